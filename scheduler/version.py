"""herd's own version: what `herd --version`, `herd version` and the heartbeats report."""

from __future__ import annotations

from pathlib import Path


def herd_version() -> str:
    """The installed distribution's version; pyproject.toml's when run from a source tree."""
    # Imported here: importlib.metadata costs ~20 ms, and every verb imports this module.
    import importlib.metadata
    import tomllib

    try:
        return importlib.metadata.version("herd")
    except importlib.metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text("utf-8"))["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"
