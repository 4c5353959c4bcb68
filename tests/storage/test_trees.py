"""check_manifest: a manifest built from a stored one is checked by its changed paths only, and
must refuse exactly what checking the whole refuses (a path not normalised, a file that is also
a directory)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.errors import InvalidPath
from storage.model import FileEntry, Manifest
from storage.paths import find_clash, normalize_path
from storage.trees import check_manifest
from tests.fakes import file_trees

TREES = file_trees(st.text(alphabet="ab", min_size=1, max_size=2), max_depth=3, max_files=12)
NEW_PATHS = st.lists(st.sampled_from(["/a", "/a/b", "/b/a/a", "/ab", "/a//b", "/b/", "/c", "/a/a/a"]), max_size=3)


def entry(text: str) -> FileEntry:
    return FileEntry(chunks=(text.encode().hex().ljust(64, "0")[:64],), size=len(text))


def refused_whole(files: dict[str, FileEntry]) -> bool:
    try:
        return any(normalize_path(p) != p for p in files) or find_clash(files) is not None
    except InvalidPath:
        return True


@given(TREES, NEW_PATHS, st.data())
def test_checking_the_changes_refuses_what_checking_the_whole_refuses(tree: list[str], new: list[str], data: Any) -> None:
    # Given a stored manifest, and one built from it: some paths gone, some replaced, some new
    base = Manifest(files={p: entry(p) for p in tree})
    gone = data.draw(st.sets(st.sampled_from(tree))) if tree else set()
    files = {p: e for p, e in base.files.items() if p not in gone}
    files.update({p: entry("new") for p in new})
    built = Manifest.model_construct(files=files)
    # When it is checked against its base; Then it is refused exactly when the whole is invalid
    if refused_whole(files):
        with pytest.raises(InvalidPath):
            check_manifest(built, base)
    else:
        check_manifest(built, base)


def test_a_clash_names_both_paths() -> None:
    base = Manifest(files={f"/f{i}": entry(str(i)) for i in range(20)})
    with pytest.raises(InvalidPath, match="'/f3' would be both a file and a directory .*'/f3/x'"):
        check_manifest(Manifest.model_construct(files={**base.files, "/f3/x": entry("x")}), base)
    with pytest.raises(InvalidPath, match="'/g' would be both a file and a directory .*'/g/h'"):
        check_manifest(Manifest.model_construct(files={**base.files, "/g/h": entry("x"), "/g": entry("y")}), base)
    with pytest.raises(InvalidPath, match="invalid path '/a//b'"):
        check_manifest(Manifest.model_construct(files={**base.files, "/a//b": entry("x")}), base)
