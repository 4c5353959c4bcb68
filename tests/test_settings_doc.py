"""Every pydantic-settings field of herd is listed in the README's configuration table.

The settings classes live in `<package>/settings.py` (style principle 14). A field is read from
`HERD_<NAME>` (the class's env_prefix plus the upper-cased field name) unless it has an alias,
in which case every string alias is an environment variable and must be documented.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from pydantic import AliasChoices
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

from tests.fixtures.services import missing_service

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KNOWN_PACKAGES = ("storage", "scheduler", "worker")
ENV_NAME = re.compile(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b")


def settings_modules() -> list[str]:
    """storage.settings, scheduler.settings, worker.settings, and any other settings.py of a
    package, nested ones too (scheduler.server.settings)."""
    found = {".".join(p.relative_to(ROOT).with_suffix("").parts) for pkg in KNOWN_PACKAGES
             for p in (ROOT / pkg).rglob("settings.py") if (p.parent / "__init__.py").exists()}
    found |= {p.parent.name + ".settings" for p in ROOT.glob("*/settings.py") if (p.parent / "__init__.py").exists()}
    return sorted(found | {f"{pkg}.settings" for pkg in KNOWN_PACKAGES})


def settings_classes(module_name: str) -> list[type[BaseSettings]]:
    if not (ROOT / module_name.replace(".", "/")).with_suffix(".py").exists():
        missing_service(f"{module_name} does not exist yet")  # under CI=true: a failure, never a skip
    module = importlib.import_module(module_name)
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type)
        and issubclass(obj, BaseSettings)
        and obj is not BaseSettings
        and obj.__module__ == module_name
    ]


def env_names(cls: type[BaseSettings], name: str, info: FieldInfo) -> list[str]:
    """The environment variables pydantic-settings reads for one field (upper-cased)."""
    aliases: list[str] = []
    for alias in (info.validation_alias, info.alias):
        if isinstance(alias, str):
            aliases.append(alias)
        elif isinstance(alias, AliasChoices):
            aliases += [choice for choice in alias.choices if isinstance(choice, str)]
    if aliases:
        return sorted({a.upper() for a in aliases})
    prefix = cls.model_config.get("env_prefix", "") or ""
    return [f"{prefix}{name}".upper()]


def readme_table_names() -> set[str]:
    """Env var names in the first column of the tables under the README's Configuration heading."""
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^#+\s*Configuration\s*$(.*?)(?=^#{1,2}\s)", text + "\n# end", re.M | re.S)
    assert match, "README.md has no 'Configuration' section"
    names: set[str] = set()
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and not set(cells[0]) <= set("-: "):
            names |= set(ENV_NAME.findall(cells[0]))
    return names


def test_readme_configuration_table_lists_the_storage_url() -> None:
    # Given the README; Then its configuration table has at least the storage URL
    assert "HERD_STORAGE" in readme_table_names()


@pytest.mark.parametrize("module_name", settings_modules())
def test_every_settings_field_is_in_the_readme(module_name: str) -> None:
    # Given the settings classes of one package
    classes = settings_classes(module_name)
    assert classes, f"{module_name} defines no pydantic-settings class"
    documented = readme_table_names()

    # When each field's environment variable names are worked out
    missing = [
        f"{cls.__name__}.{name}: {env}"
        for cls in classes
        for name, info in cls.model_fields.items()
        for env in env_names(cls, name, info)
        if env not in documented
    ]

    # Then the README's Configuration table names every one
    assert missing == [], "add these to the Configuration table in README.md"


def test_a_missing_settings_module_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given CI=true and a package whose settings module is missing
    monkeypatch.setenv("CI", "true")
    # Then the check fails rather than skips (a CI run must never pass by skipping)
    with pytest.raises(pytest.fail.Exception, match="does not exist"):
        settings_classes("nosuchpackage.settings")
    # And locally it is a skip
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception):
        settings_classes("nosuchpackage.settings")
