"""FileInfo.unchecked makes, without validation, the very model pydantic's validation makes: it
sets the model's instance attributes itself, so a pydantic that changed them must fail here."""

from __future__ import annotations

import copy
import json
import pickle
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from storage.model import FileInfo

texts = st.text(max_size=20)
kinds: st.SearchStrategy[Literal["file", "dir"]] = st.sampled_from(["file", "dir"])


@given(texts, kinds, st.integers(0, 2**62), texts, texts)
def test_unchecked_is_the_validated_model(path: str, kind: Literal["file", "dir"], size: int, digest: str,
                                          commit: str) -> None:
    checked = FileInfo(path=path, type=kind, size=size, hash=digest, commit=commit)
    info = FileInfo.unchecked(path, kind, size, digest, commit)
    assert type(info) is FileInfo
    assert info == checked and checked == info
    assert hash(info) == hash(checked)
    assert repr(info) == repr(checked)
    assert info.model_dump() == checked.model_dump()
    assert info.model_dump(exclude_unset=True) == checked.model_dump(exclude_unset=True)
    assert info.model_dump_json() == checked.model_dump_json()
    assert info.canonical_bytes() == checked.canonical_bytes()
    assert info.model_fields_set == checked.model_fields_set
    assert FileInfo.model_validate_json(info.model_dump_json()) == info


def test_unchecked_is_frozen_and_copies_like_a_model() -> None:
    info = FileInfo.unchecked("/a/b.txt", "file", 7, "h", "c1")
    with pytest.raises(ValidationError, match="frozen"):
        info.size = 8  # type: ignore[misc]
    moved = info.model_copy(update={"commit": "c2"})
    assert (moved.commit, info.commit) == ("c2", "c1")
    assert "commit" in moved.model_fields_set and info.model_fields_set == {"path", "type", "size", "hash", "commit"}
    assert copy.deepcopy(info) == info and pickle.loads(pickle.dumps(info)) == info


def test_unchecked_serialises_as_the_server_sends_it() -> None:
    """The server answers list-file and glob-file with lists of them (FastAPI, by the type)."""
    infos = [FileInfo.unchecked("/a", "file", 1, "h1", "c"), FileInfo.unchecked("/d", "dir", 9, "h2", "c")]
    sent = json.loads(TypeAdapter(list[FileInfo]).dump_json(infos))
    assert sent == [{"path": "/a", "type": "file", "size": 1, "hash": "h1", "commit": "c"},
                    {"path": "/d", "type": "dir", "size": 9, "hash": "h2", "commit": "c"}]
    assert [FileInfo.model_validate(item) for item in sent] == infos


def test_each_unchecked_info_has_its_own_fields_set() -> None:
    """model_copy(update=...) adds to the copy's set: two infos never share one."""
    first, second = FileInfo.unchecked("/a", "file", 1, "h", "c"), FileInfo.unchecked("/b", "file", 1, "h", "c")
    assert first.model_fields_set is not second.model_fields_set
