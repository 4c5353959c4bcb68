"""Endpoint resolution keyed on what the endpoint rules read (pure; storage/s3.py wires it).

botocore resolves every request's endpoint from the service's rule set, with parameters taken
from the call, and caches the result keyed on all of them: 100 entries shared by every client
of the process. S3's rule set declares `Key`, `Prefix` and `CopySource` as parameters but no
rule reads them, so each new object key missed the cache and evaluated the rules again: about
0.2 ms of CPU per request, a tenth of a small PUT's. Dropping the parameters no rule reads
before the cached call gives the same endpoint (the rules cannot tell) from the cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any


def unread_parameters(ruleset: Mapping[str, Any]) -> frozenset[str]:
    """The declared parameters the rules never name: neither as a `{"ref": ...}` nor in a
    `{name}` or `{name#attr}` template. Any other mention of the name, wherever it stands in
    the rules, counts as a read, so a parameter a later rule set reads is kept."""
    rules = json.dumps(ruleset.get("rules", []))
    return frozenset(
        name for name in ruleset.get("parameters", {})
        if f'"{name}"' not in rules and "{" + name not in rules
    )


class ReadParametersOnly:
    """A provider's `resolve_endpoint` called with only the parameters its rules read."""

    def __init__(self, resolve: Callable[..., Any], unread: frozenset[str]) -> None:
        self.resolve = resolve
        self.unread = unread

    def __call__(self, **params: Any) -> Any:
        for name in self.unread:
            params.pop(name, None)
        return self.resolve(**params)
