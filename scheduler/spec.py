"""Pachyderm 1.x pipeline specs: parsing, validation and canonical form (pure).

Keys are snake_case or lowerCamel (as Pachyderm's jsonpb reads them); unknown keys are
rejected by name. Fields Pachyderm has but herd does not act on are accepted and listed in
`PipelineSpec.ignored_fields`; fields herd cannot honour (`incremental`, `service`, `spout`,
`git` inputs) are rejected with a message naming them. The 1.4 `inputs` array is read as
the cross of its entries (`spec_notes` says so once, when a spec is created or updated).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Annotated, Any

import yaml
from pydantic import AfterValidator, AliasChoices, AliasGenerator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import PlainSerializer
from pydantic import ValidationError, ValidationInfo, create_model, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from scheduler.glob import compile_glob, reads_captures
from storage.errors import HerdError, InvalidSpec
from storage.model import canonical_json
from storage.paths import NAME_RULE, is_valid_name

_SHELL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # only ever used with fullmatch
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION = re.compile(f"(?:{_DURATION_PART.pattern})+")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_QUANTITY = re.compile(r"\+?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?")
_QUANTITY_UNITS = {"": 1, "m": 1e-3, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
                   "E": 10**18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}

# Bounds on what a spec file may hold: a spec is a few KiB of hand-written text, so anything
# near these is a mistake or an attack (YAML aliases that expand exponentially, nesting that
# overflows Python's stack). Each is refused with a one-line InvalidSpec.
MAX_SPEC_BYTES = 1 << 20
MAX_DEPTH = 64  # objects and arrays inside each other
MAX_VALUES = 100_000  # scalars, objects and arrays in one document, YAML aliases expanded
# Sane upper bounds of numeric fields (a typo such as 1e9 workers or a 300-year timeout).
MAX_PARALLELISM = 10_000
MAX_COEFFICIENT = 1_000.0
MAX_DATUM_TRIES = 100
MAX_DURATION = 366 * 24 * 3600.0  # a year
MAX_CPU = 4_096.0
MAX_GPUS = 1_024
MAX_BYTES_QUANTITY = 2**60  # 1 EiB

# Pachyderm fields herd accepts but does not act on (Kubernetes, tuning, later features).
IGNORED_TOP = ("scale_down_threshold", "standby", "cache_size", "max_queue_size", "chunk_spec",
               "hashtree_spec", "scheduling_spec", "pod_spec", "pod_patch", "spec_commit", "resource_spec",
               "reprocess_spec", "metadata", "autoscaling", "sidecar_resource_limits", "batch", "tf_job", "update")
IGNORED_TRANSFORM = ("image_pull_secrets", "debug", "dockerfile")


def _fail(message: str) -> PydanticCustomError:
    return PydanticCustomError("herd_spec", message)


def _matching(valid: Callable[[str], bool], rule: str) -> AfterValidator:
    def check(value: str) -> str:
        if not valid(value):
            raise _fail(f"invalid name {value!r}: {rule}")  # repr: a newline or escape code shows as such
        return value
    return AfterValidator(check)


def _refused(message: str, when: Callable[[Any], bool] = lambda v: v is not None) -> AfterValidator:
    def check(value: Any) -> Any:
        if when(value):
            raise _fail(message)
        return value
    return AfterValidator(check)


def _valid_glob(value: str) -> str:
    try:
        compile_glob(value)
    except HerdError as exc:
        raise _fail(exc.message) from None
    return value


def _valid_input_name(value: str) -> str:
    # /pfs/<name> and the <name>, <name>_COMMIT variables must work: Pachyderm's repo-name rule
    # (so `repo-1` is fine: execve takes any variable name without '=', NUL).
    if value == "out":
        raise _fail("an input cannot be named 'out'")
    if not is_valid_name(value):
        raise _fail(f"invalid input name {value!r}: {_NAME_RULE}")
    return value


def _valid_env(env: dict[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if not is_shell_name(key):
            raise _fail(f"invalid variable name '{key}'")
        if "\x00" in value or "\n" in value:
            raise _fail(f"the value of '{key}' contains a NUL or newline")
    return env


# Names follow the one rule of storage/paths.py (Pachyderm's); a pipeline name must also start
# with a letter or digit, so `-x` is never read as a CLI option (valid_pipeline_name, below).
_NAME_RULE = f"use {NAME_RULE}"
PipelineName = Annotated[str, _matching(lambda v: valid_pipeline_name(v), _NAME_RULE + ", starting with a letter or digit")]
RefName = Annotated[str, _matching(is_valid_name, _NAME_RULE)]  # repo and branch names
# Seconds in Python; written back as a Go duration, so canonical JSON re-parses as a spec.
Duration = Annotated[float, BeforeValidator(lambda v: parse_duration(v)), PlainSerializer(lambda v: _go_duration(v))]
Quantity = Annotated[int, BeforeValidator(lambda v: parse_quantity(v))]  # bytes
Unset = Annotated[str | None, AfterValidator(lambda v: v or None)]  # proto3: "" means unset


class _Model(BaseModel):
    """Forbids unknown keys; accepts each field under its snake_case and lowerCamel names."""

    model_config = ConfigDict(
        extra="forbid", frozen=True,
        alias_generator=AliasGenerator(validation_alias=lambda f: AliasChoices(f, to_camel(f))),
    )


class Egress(_Model):
    """Where the output commit's files go once it is finished (Pachyderm's `egress.URL`;
    "" means none, as proto3 reads it)."""

    url: Annotated[str, AfterValidator(lambda v: _valid_egress_url(v))] = Field(
        validation_alias=AliasChoices("URL", "url"))


def _valid_egress_url(value: str) -> str:
    from storage.egress import check_egress_url

    if not value:
        return value
    try:
        return check_egress_url(value)
    except HerdError as exc:
        raise _fail(exc.message) from None


class PipelineRef(_Model):
    name: PipelineName


_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # Kubernetes: a DNS subdomain
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]{1,253}")
# Where a secret may not be mounted: herd's own folders in a container and the kernel's.
_RESERVED_MOUNTS = ("/pfs", "/.herd", "/proc", "/dev", "/sys")


def _valid_mount_path(value: str | None) -> str | None:
    if not value:
        return None
    if not value.startswith("/") or "\x00" in value or any(p in (".", "..") for p in value.split("/")):
        raise _fail(f"mount_path {value!r} must be an absolute path without '.' or '..'")
    path = "/" + "/".join(p for p in value.split("/") if p)
    if path == "/" or any(path == r or path.startswith(r + "/") for r in _RESERVED_MOUNTS):
        raise _fail(f"mount_path {value!r} is reserved: use a folder outside / itself, {', '.join(_RESERVED_MOUNTS)}")
    return path


class Secret(_Model):
    """Pachyderm's Kubernetes secret reference; herd reads `<HERD_SECRETS_DIR>/<name>/<key>` on the worker.

    `env_var` + `key`: the key's value becomes that variable of user code. `mount_path`: every key
    of the secret is a read-only file in that folder (the docker runtime)."""

    name: Annotated[str, AfterValidator(lambda v: _checked(v, _SECRET_NAME, "secret name", "lowercase a-z, 0-9, "
                                                                          "'-' and '.', starting and ending with a letter or digit"))]
    mount_path: Annotated[Unset, AfterValidator(_valid_mount_path)] = None
    env_var: Unset = None
    key: Unset = None

    @model_validator(mode="after")
    def _one_use(self) -> Secret:
        if (self.mount_path is None) == (self.env_var is None):
            raise _fail(f"secret {self.name!r}: set exactly one of 'mount_path' and 'env_var'")
        if self.env_var is not None:
            if not is_shell_name(self.env_var):
                raise _fail(f"secret {self.name!r}: invalid env_var {self.env_var!r}")
            if self.key is None:
                raise _fail(f"secret {self.name!r}: env_var needs the 'key' whose value it holds")
        if self.key is not None:
            _checked(self.key, _SECRET_KEY, f"key of secret {self.name!r}", "a-z, A-Z, 0-9, '-', '_' and '.'")
            if self.key in (".", ".."):
                raise _fail(f"secret {self.name!r}: invalid key {self.key!r}")
        return self


def _checked(value: str, rule: re.Pattern[str], what: str, allowed: str) -> str:
    if not rule.fullmatch(value):
        raise _fail(f"invalid {what} {value!r}: use {allowed}")
    return value


def _optional_cmd(value: list[str] | None) -> list[str] | None:
    return value or None  # proto3: an empty list means unset


class Transform(_Model):
    image: str = "ubuntu:16.04"
    cmd: list[str] = Field(min_length=1)
    stdin: list[str] = []
    env: Annotated[dict[str, str], AfterValidator(_valid_env)] = {}
    working_dir: Unset = None  # None: the image's WORKDIR
    accept_return_code: list[Annotated[int, Field(ge=-255, le=255)]] = []
    user: Unset = None  # None: the image's USER
    secrets: list[Secret] = []
    image_pull_secrets: list[str] | None = None
    debug: bool | None = None
    dockerfile: str | None = None
    # Run after the last failed try, over the same inputs; exit 0 marks the datum RECOVERED.
    err_cmd: Annotated[list[str] | None, AfterValidator(_optional_cmd)] = None
    err_stdin: list[str] = []

    @model_validator(mode="after")
    def _unique_secret_uses(self) -> Transform:
        for field in ("env_var", "mount_path"):
            values = [getattr(s, field) for s in self.secrets if getattr(s, field) is not None]
            for value in sorted({v for v in values if values.count(v) > 1}):
                raise _fail(f"secrets: {field} {value!r} is used more than once")
        return self


class ParallelismSpec(_Model):
    constant: int = Field(default=0, ge=0, le=MAX_PARALLELISM)
    coefficient: float = Field(default=0.0, ge=0, le=MAX_COEFFICIENT)
    strategy: str | None = None  # 1.4 only; the non-zero field says which one is meant

    @model_validator(mode="after")
    def _one(self) -> ParallelismSpec:
        if self.constant and self.coefficient:
            raise _fail("set only one of 'constant' and 'coefficient'")
        return self


class GpuSpec(_Model):
    type: str = ""
    number: int = Field(default=0, ge=0, le=MAX_GPUS)


def _gpu_count(v: Any) -> Any:
    return {"number": v} if isinstance(v, int) and not isinstance(v, bool) else v  # the 1.6-1.7 form


class ResourceSpec(_Model):
    cpu: float | None = Field(default=None, ge=0, le=MAX_CPU)
    memory: Quantity | None = None
    gpu: Annotated[GpuSpec, BeforeValidator(_gpu_count)] | None = None
    disk: Quantity | None = None


class PfsInput(_Model):
    name: Annotated[str, AfterValidator(_valid_input_name)] = ""  # defaults to the repo
    repo: RefName
    branch: RefName = "master"
    glob: Annotated[str, AfterValidator(_valid_glob)]
    empty_files: bool = False
    lazy: bool = False  # herd downloads eagerly; the flag only changes how Pachyderm fetches
    commit: str | None = None
    from_commit: str | None = None
    # Keys built from the glob's capture groups ("$1", "$1-$2"), for a join's or a group's children.
    join_on: str = ""
    outer_join: bool = False  # in a join: keep this input's datums whose key some other input lacks
    group_by: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and isinstance(data.get("repo"), str):
            data = {**data, "name": data["repo"]}
        return data


def _valid_cron_spec(value: str) -> str:
    from scheduler.cron import parse_schedule  # scheduler.cron reads durations from this module

    try:
        parse_schedule(value)
    except HerdError as exc:
        raise _fail(exc.message) from None
    return value


def _utc(value: datetime | None) -> datetime | None:
    # A time without an offset is UTC (tick names and every herd record are).
    return None if value is None else value.replace(tzinfo=value.tzinfo or timezone.utc).astimezone(timezone.utc)


class CronInput(_Model):
    """A repo that gets an empty file named by the tick time (RFC 3339) at every tick of
    `spec` (scheduler/cron.py), read as a pfs input with glob `/*` on its master branch."""

    name: Annotated[str, AfterValidator(_valid_input_name)]
    spec: Annotated[str, AfterValidator(_valid_cron_spec)]
    # "" = `<pipeline>_<name>`, filled in by PipelineSpec (an input does not know its pipeline).
    repo: Annotated[str, _matching(lambda v: v == "" or is_valid_name(v), _NAME_RULE)] = ""
    start: Annotated[datetime | None, AfterValidator(_utc)] = None  # None: when the cron repo was created
    overwrite: bool = False  # each tick deletes the earlier tick files

    def as_pfs(self) -> PfsInput:
        """How jobs read it: a pfs input on the cron repo's master, one datum per tick file."""
        # Built, not validated: the fields are checked here, and `repo` is "" until PipelineSpec
        # fills it in (cross checks the names of its children before that).
        return PfsInput.model_construct(name=self.name, repo=self.repo, branch="master", glob="/*")


class Input(_Model):
    pfs: PfsInput | None = None
    atom: PfsInput | None = None  # the 1.4-1.8 name of pfs; folded into pfs
    cross: Annotated[list[Input], Field(min_length=1)] | None = None
    union: Annotated[list[Input], Field(min_length=1)] | None = None
    git: Annotated[Any, _refused("git inputs are not supported (removed in Pachyderm 2.x); "
                                 "commit the data to a repo instead")] = None
    cron: CronInput | None = None
    join: Annotated[list[Input], Field(min_length=1)] | None = None
    group: Annotated[list[Input], Field(min_length=1)] | None = None

    @field_validator("cross", "join", "group")
    @classmethod
    def _unique_names(cls, children: list[Input] | None) -> list[Input] | None:
        seen: set[str] = set()
        for child in children or []:  # union siblings may share a name (Pachyderm 1.5.3+)
            for name in sorted(child.names() & seen):
                raise _fail(f'name "{name}" was used more than once')
            seen |= child.names()
        return children

    @field_validator("join", "group")
    @classmethod
    def _keyed_children(cls, children: list[Input] | None, info: ValidationInfo) -> list[Input] | None:
        # A key comes from one pfs input's glob; herd refuses the nested forms Pachyderm
        # accepts but keys input by input, and a missing key, which would join everything.
        key = "join_on" if info.field_name == "join" else "group_by"
        for child in children or []:
            if child.pfs is None:
                raise _fail(f"the inputs of a {info.field_name} must be pfs inputs, got a {child.kind}")
            if not getattr(child.pfs, key):
                raise _fail(f"input '{child.pfs.name}' of a {info.field_name} needs '{key}' (such as \"$1\")")
            if not reads_captures(child.pfs.glob):
                raise _fail(f"input '{child.pfs.name}': a {info.field_name} cannot key on a glob with a '!(' group")
        return children

    @model_validator(mode="after")
    def _shape(self) -> Input:
        kinds = [k for k in ("pfs", "atom", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise _fail("set exactly one of pfs (or atom), cross, union, join, group, cron"
                        + (f"; got {', '.join(kinds)}" if kinds else ""))
        return self.model_copy(update={"pfs": self.atom, "atom": None}) if self.atom is not None else self

    @property
    def kind(self) -> str:
        """'pfs', 'cross', 'union', 'join', 'group' or 'cron'."""
        return next(k for k in ("pfs", "cross", "union", "join", "group", "cron") if getattr(self, k) is not None)

    @property
    def children(self) -> list[Input]:
        """The inputs of a cross, union, join or group (empty for pfs)."""
        return self.cross or self.union or self.join or self.group or []

    def leaves(self) -> Iterator[PfsInput]:
        """Every pfs input below this one, depth first in spec order (a cron input as the pfs
        input it is read as)."""
        if self.pfs is not None:
            yield self.pfs
        if self.cron is not None:
            yield self.cron.as_pfs()
        for child in self.children:
            yield from child.leaves()

    def names(self) -> set[str]:
        """The input names that appear under /pfs for this input."""
        return {leaf.name for leaf in self.leaves()}

    @property
    def sort_name(self) -> str:
        """Pachyderm's InputName: a pfs input's name, else its first child's."""
        if self.cron is not None:
            return self.cron.name
        return self.pfs.name if self.pfs is not None else self.children[0].sort_name


# The long tail of Pachyderm fields herd accepts and reports but never acts on, made in one go.
_ACCEPTED_FIELDS: dict[str, Any] = {f: (Any, None) for f in IGNORED_TOP}
_Accepted: type[_Model] = create_model("_Accepted", __base__=_Model, **_ACCEPTED_FIELDS)


def _unsupported(kind: str) -> AfterValidator:
    # `"incremental": false` and nulls say "not used", which is what herd does anyway.
    return _refused(f"{kind} pipelines are not supported by herd", when=bool)


class PipelineSpec(_Accepted):
    pipeline: PipelineRef
    description: str = ""
    transform: Transform
    parallelism_spec: ParallelismSpec | None = None
    input: Input
    output_branch: RefName = "master"
    egress: Egress | None = None
    datum_tries: Annotated[int, Field(ge=0, le=MAX_DATUM_TRIES), AfterValidator(lambda v: v or 3)] = 3  # 0 = unset
    datum_timeout: Duration | None = None
    job_timeout: Duration | None = None
    resource_limits: ResourceSpec | None = None
    resource_requests: ResourceSpec | None = None
    enable_stats: bool = False
    salt: str | None = None
    reprocess: bool = False
    incremental: Annotated[Any, _unsupported("incremental")] = None
    service: Annotated[Any, _unsupported("service")] = None
    spout: Annotated[Any, _unsupported("spout")] = None

    @model_validator(mode="before")
    @classmethod
    def _old_inputs(cls, data: Any) -> Any:
        if isinstance(data, dict) and "inputs" in data:
            if data.get("input") is not None:
                raise _fail("set only one of 'input' and 'inputs' (the Pachyderm 1.4 form)")
            rest = {k: v for k, v in data.items() if k != "inputs"}
            return {**rest, "input": old_inputs_as_input(data["inputs"])}
        return data

    @model_validator(mode="after")
    def _cron_repos(self) -> PipelineSpec:
        # Pachyderm's default cron repo is `<pipeline>_<name>`: only here is the pipeline known.
        filled = _with_cron_repos(self.input, self.pipeline.name)
        return self if filled is self.input else self.model_copy(update={"input": filled})

    @property
    def name(self) -> str:
        """The pipeline's name (also its output repo)."""
        return self.pipeline.name

    @property
    def ignored_fields(self) -> list[str]:
        """Dotted names of fields that were given but that herd does not act on."""
        found = [f for f in IGNORED_TOP if getattr(self, f) is not None]
        found += [f"transform.{f}" for f in IGNORED_TRANSFORM if getattr(self.transform, f) is not None]
        if self.parallelism_spec is not None and self.parallelism_spec.strategy is not None:
            found.append("parallelism_spec.strategy")
        return sorted(found)

    def input_repos(self) -> set[str]:
        """Every repo this pipeline reads."""
        return {leaf.repo for leaf in self.input.leaves()}

    def canonical_bytes(self) -> bytes:
        """Sorted-key compact JSON of the normalised spec (defaults filled, atom folded into pfs)."""
        return canonical_json(self.model_dump(mode="json", exclude_none=True))


Input.model_rebuild()


def _with_cron_repos(inp: Input, pipeline: str) -> Input:
    """`inp` with every cron input's repo filled in (`<pipeline>_<name>`); `inp` itself when
    nothing changes."""
    if inp.cron is not None:
        if inp.cron.repo:
            return inp
        repo = f"{pipeline}_{inp.cron.name}"
        if not is_valid_name(repo):
            raise _fail(f"input.cron: the cron repo name {repo!r} is invalid ({_NAME_RULE}): set 'repo'")
        return inp.model_copy(update={"cron": inp.cron.model_copy(update={"repo": repo})})
    updates: dict[str, list[Input]] = {}
    for field in type(inp).model_fields:  # every kind of child list (cross, union, join, group)
        children = getattr(inp, field)
        if isinstance(children, list) and children and isinstance(children[0], Input):
            filled = [_with_cron_repos(child, pipeline) for child in children]
            if any(new is not old for new, old in zip(filled, children)):
                updates[field] = filled
    return inp.model_copy(update=updates) if updates else inp


OLD_INPUTS_NOTE = "'inputs' is the Pachyderm 1.4 form of 'input': herd reads it as the cross of its entries"
_OLD_INPUT_KEYS = ("name", "repo", "branch", "glob", "lazy", "from")  # 1.4's PipelineInput


def spec_notes(raw: Any) -> list[str]:
    """What to tell the user once about a spec as written: create/update-pipeline print these
    on stderr (the stored spec is parsed again by every job; only the CLI says them)."""
    return [OLD_INPUTS_NOTE] if isinstance(raw, dict) and "inputs" in raw else []


def old_inputs_as_input(entries: Any) -> dict[str, Any]:
    """The 1.4 `inputs` array as the `input` it means: the cross of one pfs input per entry,
    as Pachyderm 1.4's translatePipelineInputs made it (a cross of one for a single entry)."""
    if not isinstance(entries, list) or not entries:
        raise _fail("inputs: expected a non-empty list of inputs")
    return {"cross": [{"pfs": _old_entry(i, entry)} for i, entry in enumerate(entries)]}


def _old_entry(index: int, entry: Any) -> dict[str, Any]:
    where = f"inputs[{index}]"
    if not isinstance(entry, dict):
        raise _fail(f"{where}: expected an object")
    for key in entry:
        if key not in _OLD_INPUT_KEYS:
            raise _fail(f"unknown field '{where}.{key}'")
    repo = entry.get("repo")
    repo = repo.get("name") if isinstance(repo, dict) else repo  # 1.4: "repo": {"name": "data"}
    if not repo:
        raise _fail(f"'{where}.repo' is required")
    if not entry.get("glob"):
        raise _fail(f"'{where}.glob' is required")
    pfs = {"repo": repo, "glob": entry["glob"], "branch": entry.get("branch") or "master",
           "lazy": entry.get("lazy") or False}
    if entry.get("name"):
        pfs["name"] = entry["name"]
    start = entry.get("from")  # a commit: {"repo": {...}, "id": "..."}
    if start:
        pfs["from_commit"] = start.get("id") if isinstance(start, dict) else start
    return pfs


def is_shell_name(name: str) -> bool:
    """Whether a shell can `export` this variable name (POSIX: a letter or '_', then letters,
    digits, '_'), the whole of it: transform.env must be, the worker exports those it can."""
    return _SHELL_NAME.fullmatch(name) is not None


def valid_pipeline_name(name: str) -> bool:
    """Whether `name` is a valid name (storage/paths.py) starting with a letter or digit."""
    return is_valid_name(name) and name[0] not in "_-"


def parse_duration(value: Any) -> float:
    """A Go duration string ('30s', '1h5m', '1.5h', '300ms') in seconds."""
    text = value.lstrip("+") if isinstance(value, str) else ""
    if text != "0" and not _DURATION.fullmatch(text):
        raise _fail(f"invalid duration {value!r}: use a Go duration such as '30s', '1h5m' or '300ms'")
    seconds = float(sum(float(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text)))
    if not seconds <= MAX_DURATION:  # also catches inf and nan from absurdly long numbers
        raise _fail(f"duration {value!r} is longer than {MAX_DURATION / 3600:.0f}h")
    return seconds


def _go_duration(seconds: float) -> str:
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"  # no exponent: Go cannot read '1e-09s'


def parse_quantity(value: Any) -> int:
    """A Kubernetes quantity ('64M', '1Gi', '512Mi', 1024) in bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        number: float = value
        unit: float = 1
    else:
        m = _QUANTITY.fullmatch(value) if isinstance(value, str) and len(value) <= 64 else None
        if m is None:
            raise _fail(f"invalid quantity {value!r}: use a number with an optional suffix such as '64M' or '1Gi'")
        number, unit = float(m.group(1) + (m.group(2) or "")), _QUANTITY_UNITS[m.group(3) or ""]
    if not number * unit <= MAX_BYTES_QUANTITY:  # also inf and nan
        raise _fail(f"quantity {value!r} is more than {MAX_BYTES_QUANTITY} bytes (1Ei)")
    return value if unit == 1 and isinstance(value, int) else int(-(-number * unit // 1))  # round up


def parse_spec(obj: dict[str, Any]) -> PipelineSpec:
    """Validate one decoded spec; InvalidSpec names the field and the problem."""
    if not isinstance(obj, dict):
        raise InvalidSpec(f"invalid pipeline spec: expected an object, got {type(obj).__name__}")
    try:
        return PipelineSpec.model_validate(obj)
    except ValidationError as exc:
        raise InvalidSpec(_describe(exc, obj)) from None


def load_documents(text: str | bytes, source: str | None = None) -> list[Any]:
    """The spec documents of a file as the user wrote them (decoded, not yet validated).

    `source` (the file name, '-' or URL) is named in errors about the file as a whole.
    """
    head = f"invalid pipeline spec file '{source}'" if source else "invalid pipeline spec"
    if len(text) > MAX_SPEC_BYTES:
        raise InvalidSpec(f"{head}: larger than {MAX_SPEC_BYTES} bytes")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InvalidSpec(f"{head}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    text = text.lstrip("\ufeff")
    try:
        docs = _json_documents(text) if text.lstrip().startswith("{") else _yaml_documents(text)
    except _TooBig as exc:
        raise InvalidSpec(f"{head}: {exc}") from None
    except InvalidSpec as exc:
        raise InvalidSpec(f"{source}: {exc.message}" if source else exc.message) from None
    if not docs:
        raise InvalidSpec(f"{head}: the file holds no pipeline")
    return docs


class _TooBig(Exception):
    """A document past MAX_DEPTH or MAX_VALUES; the message says which."""


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped) and brackets


def _check_json_depth(text: str) -> None:
    # json's decoder recurses once per level: check the nesting before it runs.
    depth = 0
    for m in _JSON_TOKENS.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
        elif c in "]}":
            depth -= 1


def _json_documents(text: str) -> list[Any]:
    _check_json_depth(text)
    # Pachyderm reads JSON when the first character is '{', one object after another.
    decoder, pos = json.JSONDecoder(), 0
    docs: list[Any] = []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return docs
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise InvalidSpec(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        docs.append(doc)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that refuses deep nesting while composing and, before anything is built,
    documents whose aliases would expand past MAX_VALUES values or MAX_DEPTH levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Any:
        node = super().compose_document()
        if node is not None:  # PyYAML always composes a node here; its stubs allow None
            _check_expanded(node)
        return node


def _check_expanded(root: yaml.Node) -> None:
    """Count values and depth as if every alias were copied out; shared nodes are counted once
    per use, in time linear in the distinct nodes (memoised), so billion laughs costs nothing."""
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) when expanded
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        kids = _children(node)
        if children_done:
            on_path.discard(key)
            values = 1 + sum(sizes[id(k)][0] for k in kids)
            depth = 1 + max((sizes[id(k)][1] for k in kids), default=0)
            if values > MAX_VALUES:
                raise _TooBig(f"YAML aliases expand to more than {MAX_VALUES} values")
            if depth > MAX_DEPTH:
                raise _TooBig(f"nested more than {MAX_DEPTH} levels deep once YAML aliases are expanded")
            sizes[key] = (values, depth)
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise _TooBig("a YAML alias refers to a value that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in kids if id(k) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _yaml_documents(text: str) -> list[Any]:
    try:
        return [doc for doc in yaml.load_all(text, Loader=_BoundedLoader) if doc is not None]  # noqa: S506 - safe
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InvalidSpec(f"invalid YAML{where}: {problem}") from None


def _describe(exc: ValidationError, obj: dict[str, Any]) -> str:
    pipeline = obj.get("pipeline")
    name = pipeline.get("name") if isinstance(pipeline, dict) else None
    head = f"invalid pipeline spec {name!r}" if isinstance(name, str) and name else "invalid pipeline spec"
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    problems = [_problem(err) for err in errors]  # a misspelt key first: it explains a "required"
    return f"{head}: " + "; ".join(dict.fromkeys(problems)).replace("\n", " ")


def _problem(err: Any) -> str:
    where = _loc(err["loc"])
    if err["type"] == "extra_forbidden":
        return f"unknown field '{where}'"
    if err["type"] == "missing":
        return f"'{where}' is required"
    return f"{where}: {err['msg']}" if where else err["msg"]


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith("function-"):
            out += ("." if out else "") + str(part)
    return out
