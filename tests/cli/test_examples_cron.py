"""examples/cron runs in one command, as its README says: ticks every 2 s, one output line per tick."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 10 s of ticking and a dozen `herd` processes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "cron"


def test_cron_example_runs_in_one_command_and_ticks(tmp_path: Path) -> None:
    # Given a fresh store, the local runtime and the installed `herd` on PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env.update(HERD_STORAGE=f"file://{tmp_path / 'store'}", HERD_RUNTIME="local",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    readme = (EXAMPLE / "README.md").read_text()
    assert "```sh\nHERD_RUNTIME=local sh examples/cron/run.sh\n```" in readme, "the README lost its one command"
    # When the README's command runs from the repository root
    done = subprocess.run(["sh", "examples/cron/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    # Then it ticked a few times, and the output has one line per tick file, in tick order
    assert done.returncode == 0, done.stderr
    files = re.findall(r"^/(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\s+file\s", done.stdout, re.MULTILINE)
    lines = re.findall(r"^tick at (\S+)$", done.stdout, re.MULTILINE)
    assert len(lines) >= 2, done.stdout
    assert lines == sorted(lines) and len(set(lines)) == len(lines)
    assert lines == files, done.stdout
