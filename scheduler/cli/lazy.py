"""A module imported on first use, for the command modules' heavy imports (start-up time).

`herd --help` imports every command module to list the verbs, and every command imports them
all, so what a module imports at its top is paid by every verb. The job records behind
scheduler/render_pps.py pull in the pydantic models (~0.1 s); a verb that shows no job should
not pay that. Usage, which keeps the import visible to mypy and to tests/test_layering.py:

    if TYPE_CHECKING:
        from scheduler import render_pps
    else:
        render_pps = lazy_module("scheduler.render_pps")
"""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module named `name` and imports it at the first attribute read."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        # importlib's own lock makes the first import thread-safe; later reads hit sys.modules.
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy_module(name: str) -> Any:
    """`name`, imported when first used (Any: declare the real module under TYPE_CHECKING)."""
    return LazyModule(name)
