"""edit-pipeline's text: a stored spec as the editor shows it, and what comes back (pure)."""

from __future__ import annotations

import json
from typing import Any

import yaml

from storage.errors import InvalidSpec
from storage.paths import printable

EDITED = "edited spec of pipeline"


def spec_text(spec: dict[str, Any], output: str) -> str:
    """The spec as JSON (2-space indent, as pachctl writes it) or YAML, ending in a newline."""
    if output == "yaml":
        return str(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))
    return json.dumps(spec, indent=2, ensure_ascii=False) + "\n"


def edited_specs(name: str, before: dict[str, Any], text: str | None) -> list[Any] | None:
    """The one spec document of the edited text, or None when nothing changed (an editor that
    saved nothing, or a document equal to `before`).

    InvalidSpec naming the pipeline when the text is not one spec, or names another pipeline
    (edit-pipeline updates the pipeline it opened, never creates or renames one)."""
    from scheduler.spec import load_documents

    if text is None:
        return None
    docs = load_documents(text, source=f"{EDITED} '{name}'")
    if len(docs) != 1:
        raise InvalidSpec(f"{EDITED} '{name}': expected one pipeline spec, found {len(docs)}")
    doc = docs[0]
    if doc == before:
        return None
    named = doc.get("pipeline", {}).get("name") if isinstance(doc, dict) and isinstance(doc.get("pipeline"), dict) else None
    if named != name:
        shown = "no pipeline.name" if named is None else f"pipeline '{printable(str(named))}'"
        raise InvalidSpec(f"{EDITED} '{name}' names {shown}: edit-pipeline only updates '{name}'")
    return docs
