"""diff-file's argument forms (pure): pachctl 1.x words, 1.8's repo/commit, 1.9's repo@commit:path."""

from __future__ import annotations

import click
import pytest

from scheduler.cli.diff_target import FileRef, diff_targets


@pytest.mark.parametrize(("words", "new", "old"), [
    (("data", "master", "/dir"), FileRef("data", "master", "/dir"), None),
    (("data", "master"), FileRef("data", "master", "/"), None),
    (("data/master", "/dir"), FileRef("data", "master", "/dir"), None),
    (("data/master",), FileRef("data", "master", "/"), None),
    (("data/master", "/dir", "old/c1", "/p"), FileRef("data", "master", "/dir"), FileRef("old", "c1", "/p")),
    (("data", "master", "/d", "o", "c", "/p"), FileRef("data", "master", "/d"), FileRef("o", "c", "/p")),
    (("data", "master", "/d", "o/c", "/p"), FileRef("data", "master", "/d"), FileRef("o", "c", "/p")),
    (("data@master:/d",), FileRef("data", "master", "/d"), None),
    (("data@master:/d", "old@c:/p"), FileRef("data", "master", "/d"), FileRef("old", "c", "/p")),
    (("data@master:/d", "c2"), FileRef("data", "master", "/d"), FileRef("data", "c2", "/d")),
])
def test_each_form_names_both_sides(words: tuple[str, ...], new: FileRef, old: FileRef | None) -> None:
    assert diff_targets(words) == (new, old)


@pytest.mark.parametrize("words", [(), ("data",), ("a", "b", "c", "d"), ("data/master/x", "/p"), ("a", "", "/p")])
def test_bad_forms_are_usage_errors(words: tuple[str, ...]) -> None:
    with pytest.raises(click.UsageError):
        diff_targets(words)
