"""The import rules of docs/design.md, checked on every module of storage/, scheduler/, worker/.

storage imports nothing of herd; scheduler imports storage and scheduler (never worker); worker
imports storage, worker and only the pure scheduler modules. Third-party edges are pinned to one
adapter each (boto3, docker, celery), and only files named settings.py read the environment.
Imports anywhere in a module count, including inside functions; names resolved by string at
run time (Celery task names) are not imports and are allowed. The CLI's composition root
(scheduler/cli/wiring.py) is the one module that may import all three packages.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("storage", "scheduler", "worker")

# Which herd packages/modules each package may import. Besides the pure modules, a worker reads
# plans and writes results through the job-record layer (records, jobs, store; the attempt
# contract and its ledger), as Pachyderm's worker writes to pfs; it never touches the reconcile
# loop, dispatch or the CLI. Its settings take HERD_BROKER/HERD_QUEUE from scheduler.settings
# (BrokerSettings), so they are declared once.
WORKER_MAY_IMPORT_FROM_SCHEDULER = frozenset(
    {
        "scheduler.spec", "scheduler.glob", "scheduler.datums", "scheduler.messages", "scheduler.merge",
        "scheduler.records", "scheduler.job_records", "scheduler.store", "scheduler.attempts", "scheduler.ledger",
        "scheduler.settings", "scheduler.clock", "scheduler.logging_setup", "scheduler.logs", "scheduler.version", "scheduler.metrics",
    }
)
# The one module that wires the three packages together (the CLI's composition root).
COMPOSITION_ROOT = "scheduler.cli.wiring"
# Third-party top-level modules allowed only in the listed files.
PINNED_THIRD_PARTY = {
    "boto3": {"storage/s3.py"},
    "botocore": {"storage/s3.py"},
    "docker": {"worker/docker_runtime.py"},
    "celery": {"worker/app.py", "worker/tasks.py", "scheduler/dispatch_celery.py"},
    "kombu": {"worker/app.py", "worker/tasks.py", "scheduler/dispatch_celery.py"},
    "prometheus_client": {"scheduler/metrics.py", "worker/metrics.py"},
    # `herd serve` (the server extra) in its own package, started by the composition root; the
    # CLI's client of it in one file. An entry ending in "/" allows a folder.
    "fastapi": {"scheduler/server/"},
    "starlette": {"scheduler/server/"},
    "uvicorn": {"scheduler/cli/wiring.py"},
    "httpx": {"scheduler/remote/client.py"},
}
ENVIRONMENT_READERS = frozenset({"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"})


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name, e.g. "scheduler.spec" or "boto3.session"
    line: int

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def module_name(path: Path, root: Path = ROOT) -> str:
    """Dotted module name of a file under root: storage/s3.py -> storage.s3."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package_init(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve_relative(module: str | None, level: int, current: str, is_init: bool) -> str:
    package = current.split(".") if is_init else current.split(".")[:-1]
    if level > 1:
        package = package[: len(package) - (level - 1)]
    return ".".join([*package, module] if module else package)


def _is_submodule(dotted: str, root: Path) -> bool:
    base = root.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(source: str, current: str, *, is_init: bool = False, root: Path = ROOT) -> list[Import]:
    """Every module a source file imports, as absolute names.

    `from pkg import name` counts as `pkg.name` when that is a module of this repo, else as `pkg`.
    """
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _resolve_relative(node.module, node.level, current, is_init)
            for alias in node.names:
                candidate = f"{base}.{alias.name}" if base else alias.name
                is_module = base.split(".")[0] in PACKAGES and _is_submodule(candidate, root)
                found.append(Import(candidate if is_module else base, node.lineno))
    return list(dict.fromkeys(found))  # `from a import x, y` of one module counts once


def environment_reads(source: str) -> list[int]:
    """Lines that read or change the process environment through `os` (os.environ, os.getenv...)."""
    tree = ast.parse(source)
    os_names = {"os"}
    lines: list[int] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            os_names |= {alias.asname or alias.name for alias in node.names if alias.name == "os"}
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and not node.level:
            if any(alias.name in ENVIRONMENT_READERS for alias in node.names):
                lines.append(node.lineno)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENVIRONMENT_READERS
            and isinstance(node.value, ast.Name)
            and node.value.id in os_names
        ):
            lines.append(node.lineno)
    return sorted(lines)


def allowed_herd_import(importer: str, imported: str) -> bool:
    """The package rule: may module `importer` import herd module `imported`?"""
    if importer == COMPOSITION_ROOT:
        return True
    source, target = importer.split(".")[0], imported.split(".")[0]
    if source == "storage":
        return target == "storage"
    if source == "scheduler":
        return target in {"storage", "scheduler"}
    if source == "worker":
        if target == "scheduler":
            return any(imported == m or imported.startswith(m + ".") for m in WORKER_MAY_IMPORT_FROM_SCHEDULER)
        return target in {"storage", "worker"}
    return True


def violations(path: Path, root: Path = ROOT) -> list[str]:
    """Every broken rule in one module, as readable lines."""
    rel = path.relative_to(root).as_posix()
    source = path.read_text(encoding="utf-8")
    current = module_name(path, root)
    problems: list[str] = []
    for imp in imports_of(source, current, is_init=_is_package_init(path), root=root):
        if imp.top in PACKAGES and not allowed_herd_import(current, imp.module):
            problems.append(f"{rel}:{imp.line}: {current.split('.')[0]} must not import {imp.module}")
        allowed_files = PINNED_THIRD_PARTY.get(imp.top)
        if allowed_files is not None and not _allowed(rel, allowed_files):
            problems.append(f"{rel}:{imp.line}: {imp.top} may be imported only in {sorted(allowed_files)}")
    if path.name != "settings.py":
        problems += [f"{rel}:{line}: os.environ/os.getenv only in settings.py" for line in environment_reads(source)]
    return problems


def _allowed(rel: str, allowed: set[str]) -> bool:
    return rel in allowed or any(entry.endswith("/") and rel.startswith(entry) for entry in allowed)


def herd_modules(root: Path = ROOT) -> list[Path]:
    return sorted(
        path
        for package in PACKAGES
        if (root / package).is_dir()
        for path in (root / package).rglob("*.py")
        if "__pycache__" not in path.parts
    )


MODULES = herd_modules()


def test_there_are_modules_to_check() -> None:
    assert MODULES, "no module found under storage/, scheduler/ or worker/"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_module_follows_the_import_rules(path: Path) -> None:
    # Given one herd module; When its imports are read; Then none breaks the layering rules
    problems = violations(path)
    assert not problems, "import rules of docs/design.md broken:\n" + "\n".join(problems)


# The checker itself, on made-up modules, so a silent checker cannot pass everything.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        target = tmp_path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return tmp_path


def test_checker_flags_forbidden_edges(tmp_path: Path) -> None:
    # Given modules that break each rule once
    root = _tree(
        tmp_path,
        {
            "storage/__init__.py": "",
            "storage/repos.py": "from scheduler import jobs\n",
            "storage/objects.py": "import boto3\nimport os\nx = os.environ['A']\n",
            "scheduler/__init__.py": "",
            "scheduler/jobs.py": "",
            "scheduler/spec.py": "",
            "scheduler/loop.py": "def f():\n    import worker.datum\n",
            "worker/__init__.py": "",
            "worker/datum.py": "from scheduler import loop, spec\nfrom scheduler.merge import merge_outputs\n",
            "worker/tasks.py": "from os import getenv as g\nimport celery\n",
            "worker/settings.py": "import os\nA = os.getenv('A')\n",
        },
    )
    # When checked; Then each broken rule is reported, and the allowed edges are not
    found = {p.relative_to(root).as_posix(): violations(p, root) for p in herd_modules(root)}
    assert found["storage/repos.py"] == ["storage/repos.py:1: storage must not import scheduler.jobs"]
    assert any("boto3 may be imported only" in v for v in found["storage/objects.py"])
    assert any("os.environ/os.getenv only in settings.py" in v for v in found["storage/objects.py"])
    assert found["scheduler/loop.py"] == ["scheduler/loop.py:2: scheduler must not import worker.datum"]
    assert found["worker/datum.py"] == ["worker/datum.py:1: worker must not import scheduler.loop"]
    assert found["worker/tasks.py"] == ["worker/tasks.py:1: os.environ/os.getenv only in settings.py"]
    assert found["worker/settings.py"] == []


def test_relative_imports_resolve_against_the_package() -> None:
    # Given relative imports in a module and in a package __init__
    # Then they resolve to absolute names the rules understand
    assert _resolve_relative("errors", 1, "storage.repos", is_init=False) == "storage.errors"
    assert _resolve_relative("errors", 1, "storage", is_init=True) == "storage.errors"
    assert _resolve_relative("spec", 2, "scheduler.cli.main", is_init=False) == "scheduler.spec"
