"""How herd's services log (HERD_LOG_FORMAT): readable lines, or one JSON object per line for log
aggregators. One place for both `herd scheduler` and `herd worker`. Pure standard library.

A JSON line always has the same keys: time (UTC, ISO 8601), level, component (scheduler or
worker), logger, pipeline, job, datum (null when the record is not about one), message. The
pipeline, job and datum come from the record's `extra=` or, failing that, from `log_context`,
which a worker sets around the batch it runs, so records of code that knows nothing of jobs
(Celery's, boto's) still say which job they happened in.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import IO

HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CONTEXT_FIELDS = ("pipeline", "job", "datum")

_context: ContextVar[dict[str, str]] = ContextVar("herd_log_context", default={})  # noqa: B039 - never mutated


@contextmanager
def log_context(**fields: str | None) -> Iterator[None]:
    """Within this block, JSON records of this thread name these pipeline/job/datum values."""
    unknown = set(fields) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"log_context: unknown field(s) {sorted(unknown)}, expected {CONTEXT_FIELDS}")
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def json_record(record: logging.LogRecord, component: str, message: str) -> dict[str, object]:
    """The JSON object of one record (a plain function: the formatter only serialises it)."""
    context = _context.get()
    out: dict[str, object] = {
        "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
        "level": record.levelname,
        "component": component,
        "logger": record.name,
    }
    for key in CONTEXT_FIELDS:
        value = getattr(record, key, None)
        if value is None:
            value = context.get(key)
        out[key] = None if value is None else str(value)
    out["message"] = message
    return out


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a traceback goes into the message, never onto lines of its own."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        elif record.exc_text:
            message = f"{message}\n{record.exc_text}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        return json.dumps(json_record(record, self.component, message), ensure_ascii=False, default=str)


def formatter(component: str, log_format: str) -> logging.Formatter:
    """The formatter of HERD_LOG_FORMAT (`human` or `json`)."""
    if log_format == "json":
        return JsonFormatter(component)
    if log_format == "human":
        return logging.Formatter(HUMAN_FORMAT)
    raise ValueError(f"HERD_LOG_FORMAT: unknown format {log_format!r}, expected human or json")


def configure_logging(component: str, log_format: str, level: int | str, stream: IO[str] | None = None) -> None:
    """The root logger writes every record at `level` or above to stderr, in `log_format`; any
    handler set up before (basicConfig, a library's) is replaced, so no line comes out twice."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(component, log_format))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)  # a Python warning is a record too, never a stray non-JSON line
