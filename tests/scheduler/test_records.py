"""The plan's dataclasses: their hand-written __init__ (scheduler/records.py) sets every field as a
dataclass's own would, and they stay frozen."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter

from scheduler.records import JobPlan, PlannedDatum, PlannedInput
from storage.model import FileEntry

CLASSES = (PlannedInput, PlannedDatum)
ENTRY = FileEntry(chunks=("a" * 64,), size=3)


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_init_takes_the_fields_in_order_with_their_defaults(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)
    assert [p.name for p in params] == [f.name for f in fields]
    for param, field in zip(params, fields):
        if field.default is not dataclasses.MISSING:
            assert param.default == field.default, field.name
        elif field.default_factory is not dataclasses.MISSING:
            assert param.default is None, field.name  # None stands for a new one each time
        else:
            assert param.default is inspect.Parameter.empty, field.name


texts = st.text(max_size=8)
inputs = st.builds(
    PlannedInput, texts, texts, texts, texts, texts, st.dictionaries(texts, st.just(ENTRY), max_size=2),
    st.booleans(), texts, texts,
)


@given(inputs, st.lists(inputs, max_size=3), texts, texts, st.booleans())
def test_every_field_is_what_was_given_and_survives_a_plan_round_trip(
    one: PlannedInput, more: list[PlannedInput], datum_id: str, hash_: str, skip: bool,
) -> None:
    datum = PlannedDatum(datum_id, hash_, (one, *more), skip)
    assert (datum.id, datum.hash, datum.inputs, datum.skip) == (datum_id, hash_, (one, *more), skip)
    given_args: dict[str, Any] = {f.name: getattr(one, f.name) for f in dataclasses.fields(PlannedInput)}
    assert PlannedInput(**given_args) == one
    assert dataclasses.replace(one, path="/moved").path == "/moved"
    plan = JobPlan(job_id="j", pipeline="p", pipeline_version=1, spec={}, salt="s", inputs=(), datums=(datum,))
    assert JobPlan.model_validate_json(plan.model_dump_json()).datums == (datum,)
    assert TypeAdapter(PlannedDatum).validate_python(dataclasses.asdict(datum)) == datum


def test_defaults_and_a_new_files_dict_each() -> None:
    a, b = PlannedInput("in", "in", "master", "c" * 32, "/x"), PlannedInput("in", "in", "master", "c" * 32, "/x")
    assert (a.files, a.empty_files, a.join_on, a.group_by) == ({}, False, "", "")
    assert a.files is not b.files
    assert PlannedDatum("i", "h", (a,)).skip is False


@pytest.mark.parametrize("obj", [PlannedInput("in", "in", "master", "c", "/x"), PlannedDatum("i", "h", ())],
                         ids=lambda o: type(o).__name__)
def test_still_frozen(obj: object) -> None:
    for field in dataclasses.fields(obj):  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, field.name, None)
    with pytest.raises((AttributeError, TypeError)):
        obj.other = 1  # type: ignore[attr-defined]  # slots: no new attribute either
