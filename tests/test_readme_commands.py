"""Every `herd` command README.md shows for the embedded default runs as shown, in order, on a
fresh store: the blocks marked `<!-- test: embedded -->` are extracted and run through the
installed console script in a shell (their redirections included).

What a reader supplies is supplied here, and nothing else: the local files the commands read
(`-f ./cat.png`, `-r -f ./poems/`: made up when missing, a folder for `-r`), the ids the README
writes as placeholders (`<commit-id>` is what the last `start-commit` printed, `<job-id>` the
newest job, `<datum-id>`/`<datum>` one of its datums), and optional words (`[--block]`) given.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = ROOT / ".venv" / "bin"
MARK = "<!-- test: embedded -->"

pytestmark = pytest.mark.slow


def embedded_blocks(text: str) -> list[list[str]]:
    """The lines of each fenced block that directly follows the marker."""
    blocks = []
    for match in re.finditer(re.escape(MARK) + r"\s*\n```[a-z]*\n(.*?)\n```", text, re.DOTALL):
        blocks.append(match.group(1).splitlines())
    return blocks


def commands(lines: list[str]) -> list[str]:
    """The `herd ...` commands of a block: comments dropped, `a; b` lines split."""
    found = []
    for line in lines:
        line = re.sub(r"\s+#\s.*$", "", line).strip()
        for part in line.split("; "):
            part = part.strip()
            if part.startswith("herd "):
                found.append(part)
    return found


def test_readme_marks_its_embedded_blocks() -> None:
    blocks = embedded_blocks(README.read_text("utf-8"))
    assert len(blocks) >= 3 and all(commands(block) for block in blocks), "README lost its test markers"
    assert len(blocks) == README.read_text("utf-8").count(MARK)


def test_readme_embedded_commands_run_in_order(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "HERD_STORAGE": f"file://{tmp_path / 'store'}",
        "HERD_RUNTIME": "local",  # as the quickstart: no Docker engine needed
        "HERD_SCRATCH": str(tmp_path / "scratch"),
    }
    for name in ("HERD_BROKER", "HERD_FAILPOINTS"):
        env.pop(name, None)
    last_commit = ""
    ran = []
    for block in embedded_blocks(README.read_text("utf-8")):
        for command in commands(block):
            line = command.replace("[", "").replace("]", "")
            if "<commit-id>" in line:
                assert last_commit, f"{command!r}: no start-commit ran before it"
                line = line.replace("<commit-id>", last_commit)
            if "<job-id>" in line:
                line = line.replace("<job-id>", _newest_job(env, work))
            if "<datum-id>" in line or "<datum>" in line:
                job = line.split()[2]
                datum = _a_datum(env, work, job)
                line = line.replace("<datum-id>", datum).replace("<datum>", datum)
            _make_inputs(work, line)
            result = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, timeout=300)
            assert result.returncode == 0, (command, line, result.stdout[-2000:], result.stderr.decode()[-2000:])
            if line.split()[1] == "start-commit":
                last_commit = result.stdout.decode().strip()
            ran.append(command)
    assert any("create-pipeline" in command for command in ran)


def _newest_job(env: dict[str, str], cwd: Path) -> str:
    out = subprocess.run(["herd", "list-job", "--json"], cwd=cwd, env=env, capture_output=True, check=True).stdout
    return str(json.loads(out.decode().splitlines()[0])["job"]["id"])


def _a_datum(env: dict[str, str], cwd: Path, job: str) -> str:
    out = subprocess.run(["herd", "list-datum", job, "--json"], cwd=cwd, env=env, capture_output=True, check=True).stdout
    return str(json.loads(out.decode().splitlines()[0])["datum"]["id"])


def _make_inputs(work: Path, line: str) -> None:
    """The local files a reader has: each `-f PATH` that is missing is made (a folder for `-r`)."""
    words = shlex.split(line.split(">")[0])
    for i, word in enumerate(words[:-1]):
        if word != "-f" or "://" in words[i + 1]:
            continue
        path = work / words[i + 1]
        if path.exists():
            continue
        if "-r" in words or words[i + 1].endswith("/"):
            path.mkdir(parents=True)
            (path / "one.txt").write_text("the quick brown fox\n")
            (path / "two.txt").write_text("jumps over the lazy dog\nthe end\n")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"contents of {words[i + 1]}\n")
