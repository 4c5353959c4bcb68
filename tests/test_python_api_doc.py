"""docs/python-api.md's example runs as written: its one ```python block is run by the project's
Python in a child process on a fresh local store (the local runtime, as the doc says) and must
print what the comment lines at its end show."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"
PYTHON = ROOT / ".venv" / "bin" / "python"

pytestmark = pytest.mark.slow


def example() -> tuple[str, list[str]]:
    """The code of the doc's one python block and the output its closing comment promises."""
    blocks = re.findall(r"```python\n(.*?)\n```", DOC.read_text("utf-8"), re.DOTALL)
    assert len(blocks) == 1, "docs/python-api.md should have exactly one python example"
    lines = blocks[0].splitlines()
    promised: list[str] = []
    while lines and lines[-1].startswith("# "):
        promised.insert(0, lines.pop()[2:])
    assert promised, "the example ends with the output it prints, as `# ` comment lines"
    return "\n".join(lines) + "\n", promised


def test_python_api_example_prints_what_the_doc_says(tmp_path: Path) -> None:
    code, promised = example()
    env = {key: value for key, value in os.environ.items() if not key.startswith("HERD_")}
    env.update({
        "HERD_STORAGE": f"file://{tmp_path / 'store'}", "HERD_RUNTIME": "local",
        "HERD_SCRATCH": str(tmp_path / "scratch"), "PYTHONPATH": str(ROOT),
    })
    result = subprocess.run([str(PYTHON), "-c", code], cwd=tmp_path, env=env, capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert result.stdout.decode().splitlines() == promised, result.stderr.decode()[-3000:]
