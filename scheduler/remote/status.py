"""`herd status` and `herd version` through `herd serve`: the server's view of its storage,
broker, schedulers and workers (scheduler/server/routes_pps.py GET /status), plus the server
itself. The reports are built here, from the server's snapshot, by the same pure functions
(scheduler/cluster.py) the CLI uses on storage directly.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from scheduler.cluster import Report, Snapshot, status_report, version_report
from scheduler.remote.client import ApiClient
from storage.errors import Unavailable


def _snapshot(client: ApiClient, jobs: bool) -> tuple[Snapshot, str]:
    answer = client.call("GET", "/status", params={"jobs": jobs})
    return TypeAdapter(Snapshot).validate_python(answer["snapshot"]), str(answer["server"]["version"])


def server_status(address: str, client: ApiClient) -> Report:
    """status_report of the server's snapshot, headed by a row of the server; a server that
    does not answer is that row, down, and the problem (exit 6)."""
    try:
        snapshot, version = _snapshot(client, jobs=True)
    except Unavailable as exc:
        report = Report(rows=[("server", address, "down", exc.message)], problems=[exc.message])
        report.raw = {"server": {"where": address, "up": False, "error": exc.message, "version": None},
                      "ok": False, "problems": [exc.message]}
        return report
    report = status_report(snapshot)
    report.rows.insert(0, ("server", address, "up", f"version {version}"))
    report.raw = {"server": {"where": address, "up": True, "error": None, "version": version}, **report.raw}
    return report


def server_version(client_version: str, address: str, client: ApiClient) -> tuple[list[tuple[str, str, str]], dict[str, Any]]:
    """version_report of the server's snapshot (the storage format the server reads), with a
    row of the server's own version after this client's."""
    snapshot, version = _snapshot(client, jobs=False)
    rows, raw = version_report(client_version, snapshot, snapshot.reads_up_to or 0)
    rows.insert(1, ("server", address, version))
    raw = {"client": raw.pop("client"), "server": {"where": address, "version": version}, **raw}
    return rows, raw
