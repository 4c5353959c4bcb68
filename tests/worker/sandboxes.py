"""The isolation modes the process-runtime tests run in, and what a missing one does.

Every mode is always a test parameter: a sandbox this machine cannot start skips its tests
locally and FAILS them under CI (`missing_service`), so a CI run never passes by quietly
leaving bwrap or unshare out. CI (root, Debian 12, bubblewrap installed by scripts/services.sh)
has both.
"""

from __future__ import annotations

import functools
import os
import shutil

from tests.fixtures.services import missing_service
from worker import process_runtime
from worker.process_runtime import SAFE_PATH, Isolation

NAMESPACES = (Isolation.BWRAP, Isolation.UNSHARE)
ALL_MODES = (*NAMESPACES, Isolation.REWRITE)


def mode_id(mode: Isolation) -> str:
    return mode.value


@functools.cache
def _starts(mode: Isolation) -> bool:
    return mode is Isolation.REWRITE or process_runtime._probe(mode)


def why_not(mode: Isolation) -> str:
    if mode is Isolation.BWRAP and shutil.which("bwrap", path=SAFE_PATH) is None:
        return "bwrap is not installed (apt-get install bubblewrap)"
    if mode is Isolation.UNSHARE and os.geteuid() != 0:
        return "the unshare sandbox needs root"
    return f"the {mode.value} sandbox does not start here (user namespaces or mounts refused?)"


def require(mode: Isolation) -> Isolation:
    """The mode, once it is known to start here; else skip (locally) or fail (CI)."""
    if not _starts(mode):
        missing_service(why_not(mode))
    return mode


def require_root(why: str) -> None:
    if os.geteuid() != 0:
        missing_service(f"{why} needs root")

