"""The herd CLI as a user runs it: the venv's console script, with herd's modules compiled.

`pip install herd` compiles every module to bytecode. The editable install of scripts/venv.sh
leaves that to the first import, and an import does not write the .pyc file when
PYTHONDONTWRITEBYTECODE is set (as on this machine): every command would then compile herd's
~30 modules again, about 50 ms of each start here, which no installed herd pays. So the
benchmarks that time the CLI compile herd's packages first (compileall writes .pyc files
whatever that variable says, and skips the up-to-date ones).
"""

from __future__ import annotations

import compileall
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "scheduler", "worker")


def herd_command() -> list[str]:
    """The venv's `herd` console script (what a user runs), else its entry point via -c."""
    script = Path(sys.executable).with_name("herd")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from scheduler.cli import main; main()"]


def cli_environment(storage: str) -> dict[str, str]:
    """A user's environment: none of our HERD_* variables but HERD_STORAGE=`storage`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERD_")}
    env["HERD_STORAGE"] = storage
    return env


def compile_herd() -> None:
    """Bytecode for herd's packages, as an installed herd has; RuntimeError if one fails."""
    for package in PACKAGES:
        if not compileall.compile_dir(ROOT / package, quiet=1):
            raise RuntimeError(f"compileall failed on herd's package '{package}'")
