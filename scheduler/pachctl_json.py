"""`--raw` in pachctl 1.x's shape, made from herd's snake_case records. Pure.

herd builds every record with snake_case names and plain numbers: that is what `--json` prints,
and Pachyderm 1.8+ and 2.x print the same names. pachctl up to 1.7 marshalled its protobuf
messages with jsonpb's defaults, and scripts written against it parse that: field names in
lowerCamel (`data_processed` -> `dataProcessed`) and every 64-bit integer as a JSON string
(`"42"`, because a JavaScript number cannot hold every int64). `--raw` prints that shape.
Spec files are read in either spelling (scheduler/spec.py), so a spec printed either way can be
fed back to create-pipeline.

herd keeps zero values that jsonpb left out (a script needs no defaults), and a pipeline's spec
fields sit at the top level of its record as they did in PipelineInfo.
"""

from __future__ import annotations

from typing import Any, Literal

RawStyle = Literal["pachctl", "snake"]
PACHCTL: RawStyle = "pachctl"
SNAKE: RawStyle = "snake"

# Objects whose keys are the user's words (environment variables, Kubernetes labels, herd's gc
# kinds), not field names: their keys are kept as written; their values are still shaped.
MAP_FIELDS = frozenset({"env", "labels", "annotations", "node_selector", "nodeSelector", "freed"})
# The integer fields pachctl's protobufs declared 32-bit, which jsonpb printed as numbers. Every
# other integer in a record (sizes, counters, versions, restarts, return codes) was 64-bit.
INT32_FIELDS = frozenset({"internal_port", "internalPort", "external_port", "externalPort"})


def camel(name: str) -> str:
    """protoc's JSON name for a field: `parallelism_spec` -> `parallelismSpec`, `s3_out` -> `s3Out`.
    A name without `_` (`URL`, `dataTotal`) is already one and stays as written."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def shaped(value: Any, style: RawStyle) -> Any:
    """`value` as `style` prints it: unchanged for `--json`, pachctl 1.x's shape for `--raw`."""
    return pachctl_shape(value) if style == PACHCTL else value


def pachctl_shape(value: Any, field: str | None = None) -> Any:
    """Keys to lowerCamel, 64-bit integers to strings, recursively; `field` is the name `value`
    sits under (its list's name for an element), which decides how an integer prints."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return value if field in INT32_FIELDS else str(value)
    if isinstance(value, dict):
        return _object(value)
    if isinstance(value, (list, tuple)):
        return [pachctl_shape(item, field) for item in value]
    raise TypeError(f"--raw cannot print a {type(value).__name__}")


def _object(record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = camel(key)
        if name in out and key != name:
            continue  # a spec that spells a field both ways: the lowerCamel spelling wins, as written
        if key in MAP_FIELDS and isinstance(value, dict):
            out[name] = {k: pachctl_shape(v) for k, v in value.items()}
        else:
            out[name] = pachctl_shape(value, key)
    return out


def pipeline_info(record: dict[str, Any]) -> dict[str, Any]:
    """A pipeline record as PipelineInfo laid it out: the spec's fields at the top level beside
    herd's (version, state, salt, ...), which win where both name a field."""
    spec = record.get("spec")
    rest = {key: value for key, value in record.items() if key != "spec"}
    return {**spec, **rest} if isinstance(spec, dict) else rest
