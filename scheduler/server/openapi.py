"""herd's OpenAPI document, as checked into docs/openapi.json.

    .venv/bin/python -m scheduler.server.openapi > docs/openapi.json

tests/server/test_openapi.py fails when the two differ, so the document never lags the routes.
"""

from __future__ import annotations

import json


def document() -> str:
    from scheduler.server.app import make_app

    return json.dumps(make_app(None).openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(document(), end="")
