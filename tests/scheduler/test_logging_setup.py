"""HERD_LOG_FORMAT: the services' log records as readable lines or one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from scheduler.logging_setup import HUMAN_FORMAT, configure_logging, formatter, log_context

KEYS = ["time", "level", "component", "logger", "pipeline", "job", "datum", "message"]


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_have_every_key_and_the_record_fields(root_restored: None) -> None:
    # Given JSON logs of the scheduler
    out = io.StringIO()
    configure_logging("scheduler", "json", "INFO", stream=out)
    # When a record names a pipeline and a job through `extra`, and another names nothing
    logging.getLogger("herd.test").info("pipeline %s job %s: %d/%d datums", "edges", "j1", 1, 2,
                                        extra={"pipeline": "edges", "job": "j1"})
    logging.getLogger("herd.test").warning("plain")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    # Then each is one JSON object with the same keys, the message formatted, unknown fields null
    assert [list(line) for line in lines] == [KEYS, KEYS]
    first, second = lines
    assert first["message"] == "pipeline edges job j1: 1/2 datums"
    assert (first["component"], first["level"], first["pipeline"], first["job"], first["datum"]) == (
        "scheduler", "INFO", "edges", "j1", None)
    assert second["level"] == "WARNING" and second["pipeline"] is None
    assert str(first["time"]).endswith("+00:00")


def test_log_context_names_the_job_of_records_that_do_not(root_restored: None) -> None:
    # Given a worker running a batch of job j7
    out = io.StringIO()
    configure_logging("worker", "json", logging.DEBUG, stream=out)
    with log_context(job="j7"), log_context(datum="d1"):
        # When code that knows nothing of jobs logs, and code that does overrides it
        logging.getLogger("botocore").debug("retrying")
        logging.getLogger("herd").info("x", extra={"job": "j8"})
    logging.getLogger("herd").info("after")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    # Then the context fills in, `extra` wins, and nothing leaks past the block
    assert [(r["job"], r["datum"]) for r in lines] == [("j7", "d1"), ("j8", "d1"), (None, None)]
    assert lines[0]["component"] == "worker"


def test_a_traceback_stays_inside_its_json_line(root_restored: None) -> None:
    out = io.StringIO()
    configure_logging("scheduler", "json", "INFO", stream=out)
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("herd").exception("reconcile pass failed")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"].startswith("reconcile pass failed\nTraceback") and "boom" in record["message"]


def test_configure_replaces_earlier_handlers_and_human_stays_human(root_restored: None) -> None:
    # Given a handler set up before (basicConfig), When herd configures human logs
    logging.basicConfig()
    out = io.StringIO()
    configure_logging("scheduler", "human", "WARNING", stream=out)
    logging.getLogger("herd").info("hidden")
    logging.getLogger("herd").warning("shown %d", 1)
    # Then one handler, the level applies, and the line is the human format
    assert len(logging.getLogger().handlers) == 1
    (line,) = out.getvalue().splitlines()
    assert line.endswith(" WARNING herd: shown 1")
    assert formatter("worker", "human")._fmt == HUMAN_FORMAT  # noqa: SLF001


def test_unknown_format_and_context_field_are_refused() -> None:
    with pytest.raises(ValueError, match="HERD_LOG_FORMAT"):
        formatter("scheduler", "xml")
    with pytest.raises(ValueError, match="pipline"):
        with log_context(pipline="typo"):
            pass
