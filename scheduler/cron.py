"""Cron inputs (Pachyderm 1.5.3+): schedules, and which tick is due (pure).

A cron input's repo gets one commit per tick, holding an empty file named by the tick's
RFC 3339 time (`2026-12-01T22:15:03Z`). Ticking is level-triggered: the last tick is read back
from the repo (the newest tick file at its head), so `due_tick` decides from storage alone and a
restarted or standby scheduler resumes where the active one stopped.

Schedules are those of Pachyderm's parser (robfig/cron `ParseStandard`): five fields
(minute hour day-of-month month day-of-week, names such as JAN or MON allowed), a descriptor
(`@yearly` `@annually` `@monthly` `@weekly` `@daily` `@midnight` `@hourly`), or
`@every <Go duration>`. Times are UTC. Unlike Pachyderm, which makes every tick it missed one
after another, herd makes one catch-up tick (the newest one due), never a storm.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from croniter import CroniterBadDateError, croniter

from scheduler.spec import CronInput, Input, parse_duration
from storage.errors import InvalidSpec

MAX_SPEC_CHARS = 256

# robfig/cron's descriptors, as the five fields they stand for.
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_MONTHS = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
_DAYS = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
# Only the standard syntax: croniter's extensions (`R` random, `H` hashed, `L`, `W`, `#`) would
# let two schedulers compute different tick times, or accept what Pachyderm refuses.
_FIELD = re.compile(r"[0-9A-Za-z*,/?-]+")
_LETTERS = re.compile(r"[A-Za-z]+")
# RFC 3339 with whole seconds or a fraction, `Z` or an offset: what a tick file may be named.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Schedule:
    """A parsed cron spec: a constant period (`@every`) or five cron fields (UTC)."""

    text: str
    every: timedelta | None = None
    fields: str | None = None


def parse_schedule(text: str) -> Schedule:
    """A cron input's `spec`; InvalidSpec naming it and what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidSpec("empty cron spec: use five fields ('*/5 * * * *'), '@daily' or '@every 30s'")
    if len(text) > MAX_SPEC_CHARS:
        raise InvalidSpec(f"cron spec is longer than {MAX_SPEC_CHARS} characters")
    spec = text.strip()
    if spec.startswith("@every"):
        return Schedule(spec, every=_every(spec))
    fields = _DESCRIPTORS.get(spec, spec)  # case-sensitive, as robfig/cron
    if fields.startswith("@"):
        raise InvalidSpec(f"invalid cron spec {text!r}: unknown descriptor (use one of "
                          f"{', '.join(sorted(_DESCRIPTORS))} or '@every <duration>')")
    parts = fields.split()
    if len(parts) != 5:
        raise InvalidSpec(f"invalid cron spec {text!r}: expected 5 fields "
                          f"(minute hour day-of-month month day-of-week), got {len(parts)}")
    for index, part in enumerate(parts):
        names = _MONTHS if index == 3 else _DAYS if index == 4 else set()
        words = _LETTERS.findall(part)
        if not _FIELD.fullmatch(part) or any(w.upper() not in names for w in words):
            raise InvalidSpec(f"invalid cron spec {text!r}: field {index + 1} ({part!r}) is not standard cron syntax")
    normal = " ".join(parts)
    if not croniter.is_valid(normal):
        raise InvalidSpec(f"invalid cron spec {text!r}: a field is out of range")
    try:
        croniter(normal, _EPOCH).get_next(datetime)
    except CroniterBadDateError:
        raise InvalidSpec(f"invalid cron spec {text!r}: it never fires") from None
    return Schedule(spec, fields=normal)


def _every(spec: str) -> timedelta:
    duration = spec[len("@every"):].strip()
    if not duration or spec[len("@every")] not in " \t":
        raise InvalidSpec(f"invalid cron spec {spec!r}: use '@every <duration>', such as '@every 30s'")
    try:
        seconds = parse_duration(duration)
    except ValueError as exc:  # parse_duration's error is a pydantic one: keep its message
        raise InvalidSpec(f"invalid cron spec {spec!r}: {exc}") from None
    # robfig/cron: whole seconds, at least one.
    return timedelta(seconds=max(1, int(seconds)))


def due_tick(schedule: Schedule, start: datetime, last_tick: datetime | None, now: datetime) -> datetime | None:
    """The tick to make now: the newest scheduled time <= `now` after `last_tick` (or after
    `start` when nothing ticked yet), or None when nothing is due. Missed ticks collapse into
    this one; a `last_tick` or `start` in the future (another host's clock) means nothing is due."""
    anchor = _whole_seconds(max(start, last_tick) if last_tick is not None else start)
    now = now.astimezone(timezone.utc)
    if schedule.every is not None:
        periods = (now - anchor) // schedule.every
        return anchor + periods * schedule.every if periods >= 1 else None
    assert schedule.fields is not None
    try:
        first = croniter(schedule.fields, anchor).get_next(datetime)  # strictly after the anchor
    except CroniterBadDateError:
        return None
    if first > now:
        return None
    # get_prev is strictly before its start: a microsecond past now includes now itself.
    newest: datetime = croniter(schedule.fields, now + timedelta(microseconds=1)).get_prev(datetime)
    return max(newest, first)


def next_tick(schedule: Schedule, start: datetime, last_tick: datetime | None) -> datetime | None:
    """When the next tick falls due (None: never), for a caller that sleeps until then."""
    anchor = _whole_seconds(max(start, last_tick) if last_tick is not None else start)
    if schedule.every is not None:
        return anchor + schedule.every
    assert schedule.fields is not None
    try:
        found: datetime = croniter(schedule.fields, anchor).get_next(datetime)
    except CroniterBadDateError:
        return None
    return found


def tick_name(tick: datetime) -> str:
    """The file a tick commits: its RFC 3339 UTC time, whole seconds (Go's time.RFC3339)."""
    return tick.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_tick_name(name: str) -> datetime | None:
    """The time a tick file's name (no leading '/') stands for; None for any other name."""
    if not _RFC3339.fullmatch(name):
        return None
    try:
        return datetime.fromisoformat(name.replace("Z", "+00:00")).astimezone(timezone.utc)
    except ValueError:  # e.g. month 13
        return None


def tick_paths(paths: Iterable[str]) -> dict[str, datetime]:
    """The tick files among a commit's paths ('/2026-12-01T22:15:03Z'), with their times."""
    found: dict[str, datetime] = {}
    for path in paths:
        name = path[1:]
        if "/" in name:
            continue
        when = parse_tick_name(name)
        if when is not None:
            found[path] = when
    return found


def last_tick(paths: Iterable[str]) -> datetime | None:
    """The newest tick among a commit's paths (what the repo's head says ticked last)."""
    return max(tick_paths(paths).values(), default=None)


def cron_inputs(inp: Input) -> Iterator[CronInput]:
    """Every cron input in an input tree, depth first in spec order."""
    if inp.cron is not None:
        yield inp.cron
    for child in inp.children:
        yield from cron_inputs(child)


def cron_repo_description(pipeline: str, name: str) -> str:
    """The description a cron input's repo is made with."""
    return f"cron input '{name}' of pipeline {pipeline}"


def _whole_seconds(when: datetime) -> datetime:
    """UTC, fraction dropped: tick names hold whole seconds, so the grid must too."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).replace(microsecond=0)
