"""The README and docs/ cite only files that are in the repo (a newcomer follows them from a clone)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# A repo path: folders then a file with an extension we keep in the repo, e.g. storage/s3.py.
PATH = re.compile(r"(?<![\w/.$~<-])((?:\.\./)*(?:[\w.-]+/)+[\w.*-]+\.(?:py|md|sh|yml|yaml|toml|json))\b")
# Paths a document names as examples of user data, not as files of this repo.
NOT_REPO_FILES = frozenset({"a/b.txt"})


def cited_paths(text: str) -> list[str]:
    return [m.group(1) for m in PATH.finditer(text)]


def in_repo(doc: Path, path: str) -> bool:
    """True when `path` (from the repo root or from the document's folder) names repo files."""
    for base in (ROOT, doc.parent):
        target = (base / path).resolve()
        if not target.is_relative_to(ROOT):
            continue  # beside the repo (../shared/...) is not in it
        if "*" in path:
            if any(ROOT.glob(target.relative_to(ROOT).as_posix())):
                return True
        elif target.exists():
            return True
    return False


def test_the_path_pattern_finds_citations() -> None:
    text = "see docs/design.md and (`storage/s3.py`), [g](docs/guarantees.md), `../shared/r/*.md`"
    assert cited_paths(text) == ["docs/design.md", "storage/s3.py", "docs/guarantees.md", "../shared/r/*.md"]
    assert in_repo(ROOT / "README.md", "docs/*.md")
    assert not in_repo(ROOT / "README.md", "../shared/reference/*.md")
    assert not in_repo(ROOT / "docs" / "design.md", "../../shared/reference/pachyderm.md")
    assert not in_repo(ROOT / "README.md", "storage/no_such_module.py")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_cited_path_is_in_the_repo(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = [p for p in cited_paths(text) if p not in NOT_REPO_FILES and not in_repo(doc, p)]
    assert missing == [], f"{doc.name} cites files that are not in the repo"
