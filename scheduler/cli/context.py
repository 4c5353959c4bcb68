"""What every command module shares: the lazy Pfs handle, target parsing, output helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar, cast

import click

from scheduler import render
from scheduler.pachctl_json import PACHCTL, SNAKE, RawStyle, shaped

if TYPE_CHECKING:
    from pydantic_settings import BaseSettings

    from scheduler.cli.wiring import Herd
    from scheduler.pfs_api import HerdPfs
    from scheduler.pipelines import Pipelines
    from scheduler.queries import JobQueries
    from scheduler.settings import SchedulerSettings
    from storage.settings import StorageSettings

F = TypeVar("F", bound=Callable[..., Any])


class CliContext:
    """Builds the storage handle on first use, so `--help` and usage errors touch no backend.

    The settings are loaded once per command (`load_settings`, before it runs) and passed down
    from here to whatever a command builds: storage, the embedded scheduler, `herd worker`."""

    def __init__(self) -> None:
        self._loaded: dict[str, BaseSettings] = {}
        self._herd: Herd | None = None

    def load_settings(self) -> None:
        """Load every settings class now, so a bad variable is refused before any work."""
        from scheduler.cli.wiring import load_all_settings

        self._loaded = load_all_settings()

    def _loaded_settings(self, name: str) -> Any:
        if not self._loaded:  # a command run without load_settings (shell completion)
            self.load_settings()
        return self._loaded[name]

    @property
    def settings(self) -> StorageSettings:
        """Where storage is (HERD_STORAGE, HERD_S3_ENDPOINT_URL)."""
        return cast("StorageSettings", self._loaded_settings("storage"))

    @property
    def scheduler_settings(self) -> SchedulerSettings:
        return cast("SchedulerSettings", self._loaded_settings("scheduler"))

    @property
    def server_settings(self) -> Any:
        """`herd serve`'s settings (scheduler/server/settings.py: HERD_SERVE_HOST, HERD_SERVE_PORT)."""
        return self._loaded_settings("server")

    @property
    def address(self) -> str | None:
        """HERD_ADDRESS: the `herd serve` every verb goes through, or None (storage itself)."""
        return cast("str | None", getattr(self._loaded_settings("remote"), "address", None))

    @property
    def remote_settings(self) -> Any:
        """HERD_ADDRESS, HERD_TOKEN, HERD_CONFIG_DIR (scheduler/remote/settings.py)."""
        return self._loaded_settings("remote")

    @property
    def worker_settings(self) -> Any:
        """The worker's settings (a worker.settings.WorkerSettings, loaded by the composition root)."""
        return self._loaded_settings("worker")

    @property
    def herd(self) -> Herd:
        """The Python API (scheduler/cli/wiring.py) on the settings loaded for this command."""
        if self._herd is None:
            from scheduler.cli.wiring import open_herd

            self._loaded_settings("storage")  # loads them all when not loaded yet
            self._herd = open_herd(self._loaded)
        return self._herd

    @property
    def pfs(self) -> HerdPfs:
        return self.herd.pfs

    @property
    def pipelines(self) -> Pipelines:
        """Pipeline verbs over the same storage (for the pps command modules)."""
        return self.herd.pipelines

    @property
    def jobs(self) -> JobQueries:
        """Job/datum queries; flush-style waits drive the embedded scheduler via `settle`."""
        return self.herd.jobs

    def settle(self) -> None:
        """Run the jobs a change caused, in-process, unless a scheduler service owns them."""
        self.herd.settle()

    def now(self) -> datetime:
        """The clock relative times are rendered against."""
        return datetime.now(timezone.utc)


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


def settles(command: click.Command) -> click.Command:
    """Mark a verb after which the embedded default runs the jobs its change caused, before it
    returns (with HERD_BROKER set, the scheduler service does, and the verb returns at once).
    Put it on every verb that changes data or pipelines: the group reads the mark, no list."""
    setattr(command, SETTLES, True)
    return command


def runs_owed_jobs(command: click.Command | None) -> bool:
    return bool(getattr(command, SETTLES, False))


SETTLES = "herd_settles"


def storage_only(command: click.Command) -> click.Command:
    """Mark a verb that works on storage (and the broker) itself: the services, fsck,
    garbage-collect. With HERD_ADDRESS set the group refuses it, naming the server that holds them."""
    setattr(command, STORAGE_ONLY, True)
    return command


def on_storage(command: click.Command | None) -> bool:
    return bool(getattr(command, STORAGE_ONLY, False))


STORAGE_ONLY = "herd_storage_only"


def raw_option(func: F) -> F:
    """`--raw` (pachctl 1.x's JSON) or `--json` (snake_case) instead of a table: one parameter,
    `raw`, that is None, PACHCTL or SNAKE (scheduler/pachctl_json.py says how they differ)."""
    func = click.option(
        "--json", "raw", flag_value=SNAKE,
        help="Print JSON with snake_case names and plain numbers (Pachyderm 1.8+) instead of a table.",
    )(func)
    return click.option(
        "--raw", "raw", flag_value=PACHCTL,
        help="Print JSON as pachctl 1.x did (lowerCamel names, 64-bit numbers as strings) instead of a table.",
    )(func)


def target_argument(metavar: str) -> Callable[[F], F]:
    """Positional REPO REF [PATH] words, which may also be written `repo@ref[:/path]`."""
    return click.argument("target", nargs=-1, metavar=metavar)


def expand_target(words: Sequence[str]) -> list[str]:
    """Split a leading `repo@ref[:/path]` (1.9+) or `repo/ref` (pachctl up to 1.8) into words.

    A repo name holds neither `/` nor `@`, so whichever comes first in the first word ends the
    repo: `@` starts the 1.9 form (`repo@branch=commit` names the commit; the path after `:`
    may hold `/`); `/` starts the 1.8 form, whose ref is one word (a path follows as its own
    word), so `repo/ref/x` is refused rather than guessed at.
    """
    if not words:
        return []
    first = words[0]
    at, slash = first.find("@"), first.find("/")
    if at < 0 and slash < 0:
        return list(words)
    if at >= 0 and (slash < 0 or at < slash):
        repo, _, rest = first.partition("@")
        ref, colon, path = rest.partition(":")
        ref = ref.rpartition("=")[2]  # repo@branch=commit names the commit
        return [repo, ref] + ([path] if colon else []) + list(words[1:])
    repo, _, ref = first.partition("/")
    if any(char in ref for char in "/@:"):
        raise click.UsageError(
            f"'{first}': expected repo/commit with the path as its own word "
            "(repo/commit PATH), or repo@commit:/path"
        )
    return [repo, ref] + list(words[1:])


def parse_target(words: Sequence[str], metavar: str) -> list[str]:
    """Expand `words` and check them against `metavar`, every word of which is required."""
    return _checked_words(words, metavar, optional=0)


def parse_target_optional(words: Sequence[str], metavar: str) -> tuple[list[str], str | None]:
    """Like parse_target, but the last word of `metavar` (`REPO [BRANCH]`) may be left out: None."""
    values = _checked_words(words, metavar, optional=1)
    required = len(metavar.split()) - 1
    return values[:required], (values[required] if len(values) > required else None)


def _checked_words(words: Sequence[str], metavar: str, optional: int) -> list[str]:
    names = metavar.replace("[", "").replace("]", "").split()
    values = expand_target(words)
    if not len(names) - optional <= len(values) <= len(names):
        raise click.UsageError(
            f"expected {metavar} (or repo@ref:/path, repo/ref), got {len(values)} words")
    if any(value == "" for value in values):
        raise click.UsageError(f"empty word in {' '.join(words)!r}; expected {metavar}")
    return values


def echo_raw(value: Any, style: RawStyle) -> None:
    """One indented JSON document (inspect verbs)."""
    click.echo(render.to_json(shaped(value, style)))


def echo_raw_lines(values: Iterable[Any], style: RawStyle) -> None:
    """One compact JSON document per line (list verbs): jq and `while read` both take it."""
    for value in values:
        click.echo(render.to_json(shaped(value, style), indent=None))


def echo_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    click.echo(render.table(headers, rows))

