"""What every command module shares: the lazy Pfs handle, target parsing, output helpers."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import click

from scheduler import render

if TYPE_CHECKING:
    from scheduler.pipelines import Pipelines
    from scheduler.queries import Jobs
    from storage.repos import Pfs
    from storage.settings import StorageSettings

F = TypeVar("F", bound=Callable[..., Any])

# Every settings class a command may read, by name: the scheduler package names worker code and
# never imports it (docs/design.md). All are loaded before a command runs, so a bad variable is
# refused before anything is written, not after put-file has committed (HERD_PARALLELISM=abc).
SETTINGS_CLASSES = (
    "storage.settings:StorageSettings",
    "storage.settings:FailpointSettings",
    "scheduler.settings:SchedulerSettings",
    "worker.settings:WorkerSettings",
)


def check_settings() -> None:
    """Load every settings class from the environment; InvalidArgument naming the first bad variable."""
    from storage.setting_types import load_settings

    for name in SETTINGS_CLASSES:
        module, _, attr = name.partition(":")
        load_settings(getattr(importlib.import_module(module), attr))


class CliContext:
    """Builds the storage handle on first use, so `--help` and usage errors touch no backend."""

    def __init__(self) -> None:
        self._settings: StorageSettings | None = None
        self._pfs: Pfs | None = None

    @property
    def settings(self) -> StorageSettings:
        if self._settings is None:
            from storage.settings import StorageSettings
            from storage.setting_types import load_settings

            self._settings = load_settings(StorageSettings)
        return self._settings

    @property
    def pfs(self) -> Pfs:
        if self._pfs is None:
            # Imported here: the S3 backend pulls in boto3, which costs ~0.3 s at startup.
            from storage.factory import open_object_store
            from storage.repos import Pfs

            self._pfs = Pfs(open_object_store(self.settings))
        return self._pfs

    @property
    def pipelines(self) -> Pipelines:
        """Pipeline verbs over the same storage (for the pps command modules)."""
        from scheduler.pipelines import Pipelines

        return Pipelines(self.pfs)

    @property
    def jobs(self) -> Jobs:
        """Job/datum queries; flush-style waits drive the embedded scheduler via `settle`."""
        from scheduler.queries import Jobs

        return Jobs(self.pfs, settle=self.settle)

    def settle(self) -> None:
        """Run the jobs a change caused, in-process, unless a scheduler service owns them."""
        from scheduler.cli.embedded import settle

        settle(self.pfs)

    def now(self) -> datetime:
        """The clock relative times are rendered against."""
        return datetime.now(timezone.utc)


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def raw_option(func: F) -> F:
    """`--raw`: JSON with Pachyderm's snake_case field names instead of a table."""
    return click.option(
        "--raw", is_flag=True, help="Print JSON (Pachyderm field names) instead of a table."
    )(func)


def target_argument(metavar: str) -> Callable[[F], F]:
    """Positional REPO REF [PATH] words, which may also be written `repo@ref[:/path]`."""
    return click.argument("target", nargs=-1, metavar=metavar)


def expand_target(words: Sequence[str]) -> list[str]:
    """Split a leading `repo@ref[:/path]` (1.9+ syntax) into words; `repo@branch=commit` → commit."""
    if not words or "@" not in words[0]:
        return list(words)
    repo, _, rest = words[0].partition("@")
    ref, colon, path = rest.partition(":")
    ref = ref.rpartition("=")[2]  # repo@branch=commit names the commit
    head = [repo, ref] + ([path] if colon else [])
    return head + list(words[1:])


def parse_target(words: Sequence[str], metavar: str, required: int) -> list[str | None]:
    """Expand `words` and check their count against `metavar`; missing optional words are None."""
    names = metavar.replace("[", "").replace("]", "").split()
    values = expand_target(words)
    if not required <= len(values) <= len(names):
        raise click.UsageError(f"expected {metavar} (or repo@ref:/path), got {len(values)} words")
    if any(value == "" for value in values):
        raise click.UsageError(f"empty word in {' '.join(words)!r}; expected {metavar}")
    return values + [None] * (len(names) - len(values))


def echo_raw(value: Any) -> None:
    """One indented JSON document (inspect verbs)."""
    click.echo(render.to_json(value))


def echo_raw_lines(values: Iterable[Any]) -> None:
    """One compact JSON document per line (list verbs): jq and `while read` both take it."""
    for value in values:
        click.echo(render.to_json(value, indent=None))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    click.echo(render.table(headers, list(rows)))

