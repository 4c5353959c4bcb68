"""docs/openapi.json is the API the server serves, and the server serves it at /openapi.json."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from scheduler.server.openapi import document
from tests.fixtures.server import HerdServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_checked_in_document_is_current() -> None:
    assert DOC.read_text() == document(), "refresh it: .venv/bin/python -m scheduler.server.openapi > docs/openapi.json"


def test_the_server_serves_it(herd_server: HerdServer) -> None:
    served = httpx.get(herd_server.url + "/openapi.json", timeout=10).json()
    assert served == json.loads(DOC.read_text())
    assert "/api/v1/repos" in served["paths"]
