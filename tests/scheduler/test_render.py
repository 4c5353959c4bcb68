"""Pure rendering: sizes, times, tables and Pachyderm `--raw` field names."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from scheduler import render
from storage.model import Branch, BranchRef, Commit, CommitRef, FileDiff, FileInfo, RepoInfo

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1024, "1KiB"),
        (1536, "1.5KiB"),
        (5 * 1024**2, "5MiB"),
        (1234567890, "1.15GiB"),
    ],
)
def test_human_size_uses_binary_units_with_four_digits(size: int, text: str) -> None:
    assert render.human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (3, "3 seconds"),
        (60, "About a minute"),
        (150, "2 minutes"),
        (3600, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_human_duration_matches_go_units(seconds: float, text: str) -> None:
    assert render.human_duration(seconds) == text


def test_ago_and_duration_treat_naive_times_as_utc_and_dash_when_unset() -> None:
    naive = (NOW - timedelta(seconds=3)).replace(tzinfo=None)
    assert render.ago(naive, NOW) == "3 seconds ago"
    assert render.ago(None, NOW) == "-"
    assert render.duration(NOW, None) == "-"
    assert render.duration(NOW, NOW + timedelta(minutes=5)) == "5 minutes"


def test_rfc3339_is_utc_with_z() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert render.rfc3339(datetime(2024, 5, 1, 14, 0, 1, 500000, tzinfo=plus_two)) == (
        "2024-05-01T12:00:01.500000Z"
    )
    assert render.rfc3339(None) is None


def test_table_aligns_columns_without_trailing_blanks() -> None:
    # Given headers and rows of uneven widths
    text = render.table(("NAME", "SIZE"), [("a", "1B"), ("longer-name", "")])
    # Then every column starts at the same offset and no line ends in spaces
    lines = text.splitlines()
    assert lines[0] == "NAME          SIZE"
    assert lines[1] == "a             1B"
    assert lines[2] == "longer-name"


def test_table_with_no_rows_prints_headers_only() -> None:
    assert render.table(("A", "B"), []) == "A   B"


def test_table_keeps_braces_and_a_lone_column() -> None:
    # Cells are values of the line's format, never part of it: braces print as they are
    assert render.table(("NAME", "SIZE"), [("{0}{x}", "{:>9}")]).splitlines()[1] == "{0}{x}   {:>9}"
    assert render.table(("NAME",), [("a",), ("b ",)]) == "NAME\na\nb"


def test_table_refuses_a_row_of_another_length() -> None:
    # A row short of or past the headers is a bug in its caller, never a column silently dropped
    for row in (("a",), ("a", "1B", "extra")):
        with pytest.raises(ValueError, match="a table of 2 columns"):
            render.table(("NAME", "SIZE"), [("b", "2B"), row])


def _commit(**extra: object) -> Commit:
    base = dict(id="c2", repo="images", branch="master", parent="c1",
                started=NOW - timedelta(seconds=10), finished=NOW - timedelta(seconds=7),
                size=2048, description="first")
    base.update(extra)
    return Commit(**base)  # type: ignore[arg-type]


def test_commit_raw_uses_pachyderm_field_names() -> None:
    prov = (CommitRef(repo="src", id="abc", branch="master"),)
    raw = render.commit_raw(_commit(provenance=prov))
    assert raw["commit"] == {"repo": {"name": "images"}, "id": "c2"}
    assert raw["branch"] == {"repo": {"name": "images"}, "name": "master"}
    assert raw["parent_commit"] == {"repo": {"name": "images"}, "id": "c1"}
    assert raw["started"] == "2024-05-01T11:59:50Z"
    assert raw["finished"] == "2024-05-01T11:59:53Z"
    assert raw["size_bytes"] == 2048
    assert raw["provenance"] == [
        {"commit": {"repo": {"name": "src"}, "id": "abc"},
         "branch": {"repo": {"name": "src"}, "name": "master"}}
    ]
    json.dumps(raw)  # serialisable as is


def test_commit_row_and_fields_show_parent_duration_and_failure() -> None:
    commit = _commit(parent=None, failed_reason="datum abc failed")
    row = render.commit_row(commit, NOW)
    assert row == ("images", "c2", "<none>", "10 seconds ago", "3 seconds", "2KiB")
    text = render.commit_fields(commit, NOW)
    assert "Commit: images@c2" in text
    assert "Original Branch: master" in text
    assert "Parent: <none>" in text
    assert "Size: 2KiB" in text
    assert "Provenance: <none>" in text
    assert text.splitlines()[-1] == "Failed: datum abc failed"


def test_open_commit_has_no_duration_and_null_finished() -> None:
    commit = _commit(finished=None)
    assert render.commit_row(commit, NOW)[4] == "-"
    assert render.commit_raw(commit)["finished"] is None


def test_repo_and_branch_raw() -> None:
    info = RepoInfo(name="images", description="d", created=NOW, size=5, branches=("master",))
    assert render.repo_raw(info) == {
        "repo": {"name": "images"}, "created": "2024-05-01T12:00:00Z",
        "size_bytes": 5, "description": "d",
        "branches": [{"repo": {"name": "images"}, "name": "master"}],
    }
    assert render.repo_row(info, NOW + timedelta(seconds=3)) == ("images", "3 seconds ago", "5B")
    assert "Branches: master" in render.repo_fields(info, NOW)
    branch = Branch(repo="images", name="master", head="c2",
                    provenance=(BranchRef(repo="src", name="master"),))
    assert render.branch_raw(branch) == {
        "branch": {"repo": {"name": "images"}, "name": "master"},
        "head": {"repo": {"name": "images"}, "id": "c2"},
        "provenance": [{"repo": {"name": "src"}, "name": "master"}],
    }
    assert render.branch_row(Branch(repo="images", name="dev")) == ("dev", "-")


def test_file_raw_row_and_fields() -> None:
    info = FileInfo(path="/a/b.txt", type="file", size=7, hash="h", commit="c2")
    assert render.file_raw("images", info) == {
        "file": {"commit": {"repo": {"name": "images"}, "id": "c2"}, "path": "/a/b.txt"},
        "file_type": "FILE", "size_bytes": 7, "hash": "h",
    }
    folder = FileInfo(path="/a", type="dir", size=2048, hash="d", commit="c2")
    assert render.file_raw("images", folder)["file_type"] == "DIR"
    assert render.file_row(folder) == ("/a", "dir", "2KiB")
    assert render.file_fields(info).splitlines() == [
        "Path: /a/b.txt", "Type: file", "Size: 7B", "Hash: h"]


def test_diff_rows_are_sorted_by_path_with_a_status() -> None:
    diff = FileDiff(added=("/b",), modified=("/a",), deleted=("/c",))
    assert render.diff_rows(diff) == [("modified", "/a"), ("added", "/b"), ("deleted", "/c")]
    assert render.diff_raw(diff) == {"added": ["/b"], "modified": ["/a"], "deleted": ["/c"]}


def test_tables_and_fields_show_control_characters_escaped() -> None:
    # Given a path stored before paths were checked, holding a terminal escape and a tab
    from scheduler.render import fields, table
    # When it is rendered for a human
    shown_table = table(["NAME"], [["/a\x1b[31mred\tx"]])
    shown_fields = fields([("Path", "/a\x1b[31m"), ("Description", "line one\nline\x07two")])
    # Then no control character reaches the terminal; line breaks of values stay
    assert "\x1b" not in shown_table and "\\x1b[31mred\\tx" in shown_table
    assert shown_fields == "Path: /a\\x1b[31m\nDescription: line one\nline\\x07two"
