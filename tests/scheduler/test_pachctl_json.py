"""`--raw`'s shape: herd's snake_case records as pachctl 1.x's jsonpb printed them. Pure."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.pachctl_json import MAP_FIELDS, PACHCTL, SNAKE, camel, pachctl_shape, pipeline_info, shaped


@pytest.mark.parametrize(("name", "expected"), [
    ("data_processed", "dataProcessed"), ("parallelism_spec", "parallelismSpec"), ("s3_out", "s3Out"),
    ("size_bytes", "sizeBytes"), ("pipeline_name", "pipelineName"), ("URL", "URL"), ("dataTotal", "dataTotal"),
    ("repo", "repo"), ("env_var", "envVar"), ("", ""),
])
def test_camel_is_protocs_json_name(name: str, expected: str) -> None:
    assert camel(name) == expected


def test_a_job_record_prints_as_pachctl_1x() -> None:
    record = {
        "job": {"id": "j1"}, "pipeline_version": 2, "state": "JOB_SUCCESS", "restart": 0,
        "data_processed": 3, "data_total": 2**63 - 1, "stats": {"download_time": "0.5s", "download_bytes": 10},
        "output_commit": None, "failed_datums": [], "started": "2026-01-01T00:00:00Z",
    }
    assert pachctl_shape(record) == {
        "job": {"id": "j1"}, "pipelineVersion": "2", "state": "JOB_SUCCESS", "restart": "0",
        "dataProcessed": "3", "dataTotal": "9223372036854775807",
        "stats": {"downloadTime": "0.5s", "downloadBytes": "10"},
        "outputCommit": None, "failedDatums": [], "started": "2026-01-01T00:00:00Z",
    }


def test_booleans_floats_and_32_bit_fields_stay_numbers() -> None:
    shaped_ = pachctl_shape({"master": False, "coefficient": 0.5, "service": {"internal_port": 80, "external_port": 30080},
                             "accept_return_code": [1, 2]})
    assert shaped_ == {"master": False, "coefficient": 0.5, "service": {"internalPort": 80, "externalPort": 30080},
                       "acceptReturnCode": ["1", "2"]}


@pytest.mark.parametrize("field", sorted(MAP_FIELDS))
def test_a_maps_keys_are_the_users_and_stay_as_written(field: str) -> None:
    shaped_ = pachctl_shape({field: {"MY_VAR": "1", "app_name": {"size_bytes": 3}}})
    (key,) = shaped_
    assert shaped_[key] == {"MY_VAR": "1", "app_name": {"sizeBytes": "3"}}


def test_a_field_spelled_both_ways_keeps_the_lower_camel_spelling_in_either_order() -> None:
    assert pachctl_shape({"datum_tries": 1, "datumTries": 2}) == {"datumTries": "2"}
    assert pachctl_shape({"datumTries": 2, "datum_tries": 1}) == {"datumTries": "2"}


def test_json_style_changes_nothing_and_unknown_values_are_refused() -> None:
    record = {"size_bytes": 3}
    assert shaped(record, SNAKE) is record
    assert shaped(record, PACHCTL) == {"sizeBytes": "3"}
    with pytest.raises(TypeError, match="set"):
        pachctl_shape({"x": {1}})


def test_pipeline_info_puts_the_spec_fields_at_the_top_and_herds_win() -> None:
    record = {"pipeline": {"name": "p"}, "version": 2, "spec": {"pipeline": {"name": "p"}, "transform": {}, "salt": "a"},
              "salt": "b"}
    assert pipeline_info(record) == {"pipeline": {"name": "p"}, "transform": {}, "salt": "b", "version": 2}
    assert pipeline_info({"version": 1}) == {"version": 1}


_SNAKE_KEY = st.from_regex(r"[a-z][a-z0-9]{0,5}(_[a-z][a-z0-9]{0,5}){0,3}", fullmatch=True)
_SCALAR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
_RECORD = st.recursive(_SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_SNAKE_KEY, inner, max_size=4)), max_leaves=20)


def _walk(value: Any, in_map: bool = False):
    if isinstance(value, dict):
        for key, item in value.items():
            yield ("key", key, in_map)
            yield from _walk(item, key in MAP_FIELDS and isinstance(item, dict))
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield ("value", value, in_map)


@given(_RECORD)
def test_every_key_is_lower_camel_and_no_integer_is_left_as_a_number(record: Any) -> None:
    out = pachctl_shape(record)
    json.dumps(out)
    for kind, item, in_map in _walk(out):
        if kind == "key" and not in_map:
            assert "_" not in item
        if kind == "value":
            assert isinstance(item, bool) or not isinstance(item, int)
