"""RemoteHerd: the Python API of scheduler/cli/wiring.py's Herd, through `herd serve`."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from scheduler.remote.client import ApiClient
from scheduler.remote.pfs import RemotePfs

if TYPE_CHECKING:
    from scheduler.remote.pps import RemoteJobs, RemotePipelines


class RemoteHerd:
    """`pfs`, `pipelines` and `jobs` as Herd has them; the server runs the jobs a change causes
    (before it answers, on the embedded default), so `settle` has nothing to do here."""

    def __init__(self, address: str, token: str | None = None) -> None:
        self.address = address
        self.token = token

    @cached_property
    def client(self) -> ApiClient:
        return ApiClient(self.address, self.token)

    @cached_property
    def pfs(self) -> RemotePfs:
        return RemotePfs(self.client)

    @cached_property
    def pipelines(self) -> RemotePipelines:
        from scheduler.remote.pps import RemotePipelines

        return RemotePipelines(self.client)

    @cached_property
    def jobs(self) -> RemoteJobs:
        from scheduler.remote.pps import RemoteJobs

        return RemoteJobs(self.client)

    def settle(self) -> None:
        """Nothing: the server ran them."""
