"""examples/join runs in one command, as its README says, and prints what the README shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a dozen `herd` processes

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "join"


def test_join_example_runs_in_one_command_as_its_readme_shows(tmp_path: Path) -> None:
    # Given a fresh store, the local runtime and the installed `herd` on PATH
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env.update(HERD_STORAGE=f"file://{tmp_path / 'store'}", HERD_RUNTIME="local",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    readme = (EXAMPLE / "README.md").read_text()
    command = re.search(r"```sh\n(HERD_RUNTIME=local sh examples/join/run.sh)\n```", readme)
    assert command is not None, "the README lost its one command"
    # When the README's command runs from the repository root
    done = subprocess.run(["sh", "examples/join/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    # Then it prints exactly what the README shows
    assert done.returncode == 0, done.stderr
    shown = re.search(r"It runs .*?```\n(.*?)```", readme, re.DOTALL)
    assert shown is not None and done.stdout == shown.group(1)
    # And the README's next step runs one datum and skips the other four
    subprocess.run(["herd", "put-file", "purchases", "master", "/2024-01-08-STORE2.txt"], input="4 plums\n",
                   env=env, check=True, capture_output=True, text=True)
    jobs = subprocess.run(["herd", "list-job", "-p", "sales"], env=env, check=True, capture_output=True, text=True)
    assert "1 + 4 / 5" in jobs.stdout.splitlines()[1]
