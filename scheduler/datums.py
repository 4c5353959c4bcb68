"""Datums: expanding a pipeline input over its input commits (pure).

`expand(input, commits)` turns a spec's input tree into datums:
- pfs: one datum per node (file, implicit directory, or the root) the glob matches, carrying
  every file at or below that node; 0 datums when nothing matches, and glob `/` on an empty
  commit is 1 datum with no files (the root always exists in Pachyderm 1.x);
- cross: every combination of the children's datums (children sorted by name, the first
  varying fastest); 0 when any child has none;
- union: the children's datums one after another, each holding one child's data;
- join (Pachyderm 2.x): each child is a pfs input whose `join_on` builds a key from its glob's
  capture groups; for each key every child has, the cross of that key's datums; a key some
  child lacks yields the cross of the `outer_join` children that have it (nothing when none has
  `outer_join`), so an outer child's unmatched datum runs alone;
- group (2.x): one datum per distinct `group_by` key, holding every matching node of every child.

Order: the returned list is sorted by `Datum.sort_key` (the tuple of the inputs' matched
paths in input-name order, Pachyderm's order), ties broken by `Datum.id`. `sort=False` returns
Pachyderm's own enumeration order instead. A datum identical to an earlier one (a union whose
siblings yield the same name, repo, branch and path) is dropped: it has the same id and would
do the same work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product

from scheduler.glob import Glob, captures, compile_glob, expand_captures, match_nodes, subtree
from scheduler.spec import Input, PfsInput
from storage.errors import CommitNotFound
from storage.model import FileEntry, Manifest, digest_fields
from storage.trees import changed_files

# (repo, branch) -> (commit id, that commit's manifest). Inputs that read the same branch see
# the same commit, as in a Pachyderm job.
Commits = Mapping[tuple[str, str], tuple[str, Manifest]]


# slots=True: 100,000 datums are built per job, and fewer objects mean less work for the GC.
@dataclass(frozen=True, slots=True)
class DatumInput:
    """One input's share of a datum: the matched node and every file at or below it."""

    name: str
    repo: str
    branch: str
    commit: str
    glob_path: str  # the matched node: '/' for the root, else '/a/b'
    files: Mapping[str, FileEntry] = field(compare=False, hash=False, repr=False)  # full path -> entry
    empty_files: bool = False  # stage files with size 0 (Pachyderm's empty_files)
    lazy: bool = False
    # The key this node gave in a join or a group (PACH_DATUM_<name>_JOIN_ON / _GROUP_BY); it
    # follows from the path and the spec, so it is in neither the id nor the hash.
    join_on: str = field(default="", compare=False)
    group_by: str = field(default="", compare=False)
    _content_hash: str | None = field(default=None, init=False, compare=False, hash=False, repr=False)

    @property
    def is_file(self) -> bool:
        """True when the glob matched a file rather than a directory or the root."""
        return self.glob_path in self.files

    @property
    def content_hash(self) -> str:
        """A file's hash, or for a directory a hash over its children's relative paths and hashes."""
        if self._content_hash is None:
            object.__setattr__(self, "_content_hash", self._compute_hash())  # a cache, not state
        return self._content_hash  # type: ignore[return-value]

    def _compute_hash(self) -> str:
        return node_hash(self.glob_path, self.files)


def node_hash(node: str, files: Mapping[str, FileEntry]) -> str:
    """The content hash of a matched node whose files are `files`: a file's own hash, or for a
    directory (or the root '/') a hash over its files' relative paths and hashes."""
    entry = files.get(node)
    if entry is not None:
        return entry.hash
    cut = 0 if node == "/" else len(node)
    pairs = sorted((path[cut:], entry.hash) for path, entry in files.items())
    return digest_fields(x for pair in pairs for x in pair)


@dataclass(frozen=True, slots=True)
class Datum:
    """One unit of work: its inputs (kept sorted by input name)."""

    inputs: tuple[DatumInput, ...]
    # The inputs' matched paths in input-name order: the datum order for lists and merges.
    sort_key: tuple[str, ...] = field(init=False, compare=False, repr=False)
    _id: str | None = field(default=None, init=False, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        inputs = self.inputs
        if len(inputs) == 1:  # the common case, kept cheap: 100,000 datums per job
            object.__setattr__(self, "sort_key", (inputs[0].glob_path,))
            return
        inputs = tuple(sorted(inputs, key=lambda i: i.name))
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "sort_key", tuple(i.glob_path for i in inputs))

    @property
    def id(self) -> str:
        """sha256 over length-prefixed (name, repo, branch, path) per input: 'which datum', no content.

        The digest_fields (storage/model.py) of those fields, framed here: see _framed."""
        if self._id is None:
            data = b"".join(_framed_all(i.name, i.repo, i.branch) + _framed(i.glob_path) for i in self.inputs)
            object.__setattr__(self, "_id", hashlib.sha256(data).hexdigest())
        return self._id  # type: ignore[return-value]


def datum_hash(datum: Datum, pipeline_name: str, salt: str) -> str:
    """Pachyderm's HashDatum (1.5.1+): (name, path, content hash) per input, then pipeline and salt.

    The digest_fields of those fields, framed here: see _framed."""
    data = b"".join(  # inputs already in name order
        _framed_all(i.name) + _framed(i.glob_path) + _framed(i.content_hash) for i in datum.inputs
    )
    return hashlib.sha256(data + _framed_all(pipeline_name, salt)).hexdigest()


# A datum's id and hash are digest_fields over a few fields, twice per datum and 100,000 datums
# per job. The same bytes are framed here in one buffer and hashed in one call, and the fields
# every datum of a job repeats (input name, repo, branch; pipeline, salt) are framed once:
# about twice as fast as a sha256 update per field. tests/scheduler/test_plan.py checks the
# digests equal digest_fields'.
def _framed(text: str) -> bytes:
    """One field as digest_fields feeds it to sha256: its UTF-8 length in 8 bytes, then it."""
    data = text.encode()
    size = len(data)
    return (_SIZES[size] if size < _SMALL else size.to_bytes(8, "big")) + data


_SMALL = 4096  # the 8-byte lengths of shorter fields (every path, every hash) made once
_SIZES = tuple(size.to_bytes(8, "big") for size in range(_SMALL))


@lru_cache(maxsize=1024)
def _framed_all(*texts: str) -> bytes:
    return b"".join(map(_framed, texts))


class _Listing:
    """One input commit: its id, its files, and (made on first need) their sorted paths."""

    def __init__(self, commit: str, files: Mapping[str, FileEntry]) -> None:
        self.commit, self.files = commit, files
        self._paths: list[str] | None = None

    def files_at(self, node: str) -> Mapping[str, FileEntry]:
        """Every file at or below `node`, keyed by full path (the commit's own mapping for '/')."""
        if node == "/":
            return self.files
        return self.own_files_at(node)

    def own_files_at(self, node: str) -> dict[str, FileEntry]:
        """files_at(node) as a new dict, which the caller may keep."""
        if node == "/":
            return dict(self.files)
        entry = self.files.get(node)
        if entry is not None:
            return {node: entry}
        if self._paths is None:
            self._paths = sorted(self.files)  # once per commit, and only for directory matches
        return {p: self.files[p] for p in subtree(node, self._paths)}


class _Listings:
    """The input commits by (repo, branch), each prepared once however many inputs read it."""

    def __init__(self, commits: Commits) -> None:
        self.commits = commits
        self.cache: dict[tuple[str, str], _Listing] = {}

    def get(self, repo: str, branch: str) -> _Listing:
        key = (repo, branch)
        if key not in self.cache:
            if key not in self.commits:
                raise CommitNotFound(repo, branch)
            commit, manifest = self.commits[key]
            self.cache[key] = _Listing(commit, manifest.files)
        return self.cache[key]


def sole_pfs(input_spec: Input) -> PfsInput | None:
    """The input's pfs leaf when the input is that leaf alone (a pfs or a cron input), else None."""
    if input_spec.pfs is not None:
        return input_spec.pfs
    if input_spec.cron is not None:  # read as glob /*, as _walk does
        return input_spec.cron.as_pfs()
    return None


def pfs_datums(
    pfs: PfsInput, commits: Commits, pipeline_name: str, salt: str, nodes: Iterable[str] | None = None,
) -> tuple[str, list[tuple[str, str, str, dict[str, FileEntry]]]]:
    """A lone pfs input's datums as plain rows: (input commit, [(id, hash, node, files)]), in
    expand's order, each row what `Datum.id`, `datum_hash` and `files_at` give for it.

    The planner's path for the common spec (one pfs input, 100,000 files): no DatumInput and
    Datum per node, the framed fields every datum shares framed once. expand() stays the
    definition: tests/scheduler/test_plan.py checks both give the same plan. With `nodes`
    (sorted, each matched by the glob and present in the commit), the rows of those nodes only:
    a plan made as a layer on an earlier one (changed_nodes)."""
    listing = _Listings(commits).get(pfs.repo, pfs.branch)
    id_head, hash_head = _framed_all(pfs.name, pfs.repo, pfs.branch), _framed_all(pfs.name)
    hash_tail = _framed_all(pipeline_name, salt)
    sha256, file_at, own_files_at = hashlib.sha256, listing.files.get, listing.own_files_at
    sizes, small = _SIZES, _SMALL
    rows: list[tuple[str, str, str, dict[str, FileEntry]]] = []
    append = rows.append
    # match_nodes gives the nodes sorted by path: expand's order (sort_key is (path,), no ties).
    # This loop runs once per file of the commit: _framed and FileEntry.hash are written out in
    # it, which took planning of 100,000 files from about 0.50 to 0.47 s.
    for node in match_nodes(compile_glob(pfs.glob), listing.files) if nodes is None else nodes:
        entry = file_at(node)
        if entry is not None:
            files = {node: entry}
            chunks = entry.chunks
            content = chunks[0] if len(chunks) == 1 else entry.hash
        else:
            files = own_files_at(node)
            content = node_hash(node, files)
        raw, text = node.encode(), content.encode()
        path = (sizes[len(raw)] if len(raw) < small else len(raw).to_bytes(8, "big")) + raw
        text_size = sizes[len(text)] if len(text) < small else len(text).to_bytes(8, "big")
        hash_data = b"".join((hash_head, path, text_size, text, hash_tail))
        append((sha256(id_head + path).hexdigest(), sha256(hash_data).hexdigest(), node, files))
    return listing.commit, rows


def changed_nodes(
    pfs: PfsInput, old: Mapping[str, FileEntry], new: Mapping[str, FileEntry]
) -> tuple[set[str], list[str]]:
    """The nodes of a lone pfs input whose datum differs between two commits' files: (every such
    node, those of them present in `new`, sorted). Every other node has the same files in both,
    hence the same datum (id and hash); a node is one of these when a file at or below it was
    added, changed or deleted. O(files) comparisons, but datums only for what changed."""
    changed = [*changed_files(old, new), *(old.keys() - new.keys())]
    glob = compile_glob(pfs.glob)
    nodes = set(match_nodes(glob, changed)) if changed else set()
    listing = _Listing("", new)
    present = sorted(n for n in nodes if n == "/" or n in new or listing.own_files_at(n))
    return nodes, present


def _pfs(pfs: PfsInput, listings: _Listings) -> list[tuple[DatumInput, ...]]:
    listing = listings.get(pfs.repo, pfs.branch)
    name, repo, branch, commit = pfs.name, pfs.repo, pfs.branch, listing.commit
    return [
        (DatumInput(name, repo, branch, commit, node, listing.files_at(node), pfs.empty_files, pfs.lazy),)
        for node in match_nodes(compile_glob(pfs.glob), listing.files)
    ]


def _cross(children: list[Input], listings: _Listings) -> list[tuple[DatumInput, ...]]:
    ordered = sorted(children, key=lambda c: c.sort_name)  # stable, as Pachyderm's SortInput
    return _product([_walk(child, listings) for child in ordered])


def _product(lists: list[list[tuple[DatumInput, ...]]]) -> list[tuple[DatumInput, ...]]:
    if any(not datums for datums in lists):
        return []
    # product() varies its last argument fastest; reversing makes the first child vary fastest.
    return [tuple(x for part in reversed(combo) for x in part) for combo in product(*reversed(lists))]


def _keyed(pfs: PfsInput, listings: _Listings, *, join: bool) -> dict[str, list[DatumInput]]:
    """A join's or group's child: its datum inputs by key, keys in first-seen (path) order."""
    listing = listings.get(pfs.repo, pfs.branch)
    glob: Glob = compile_glob(pfs.glob)
    template = pfs.join_on if join else pfs.group_by
    by_key: dict[str, list[DatumInput]] = {}
    for node in match_nodes(glob, listing.files):
        key = expand_captures(template, node, captures(glob, node) or ())
        by_key.setdefault(key, []).append(DatumInput(
            pfs.name, pfs.repo, pfs.branch, listing.commit, node, listing.files_at(node), pfs.empty_files,
            pfs.lazy, join_on=key if join else "", group_by="" if join else key,
        ))
    return by_key


def _leaves_of(children: list[Input]) -> list[PfsInput]:
    return [child.pfs for child in children if child.pfs is not None]  # spec.py allows only pfs here


def _join(children: list[Input], listings: _Listings) -> list[tuple[DatumInput, ...]]:
    ordered = sorted(_leaves_of(children), key=lambda c: c.name)
    keyed = [_keyed(pfs, listings, join=True) for pfs in ordered]
    out: list[tuple[DatumInput, ...]] = []
    for key in sorted({k for by_key in keyed for k in by_key}):
        # 2.x's MergeTask_JOIN: a full match crosses every child; otherwise only the outer
        # children that have the key (its cross filtered to them, duplicates dropped).
        full = all(key in by_key for by_key in keyed)
        lists: list[list[tuple[DatumInput, ...]]] = [
            [(d,) for d in by_key[key]] for pfs, by_key in zip(ordered, keyed) if key in by_key and (full or pfs.outer_join)
        ]
        if lists:
            out += _product(lists)
    return out


def _group(children: list[Input], listings: _Listings) -> list[tuple[DatumInput, ...]]:
    grouped: dict[str, list[DatumInput]] = {}
    for pfs in sorted(_leaves_of(children), key=lambda c: c.name):
        for key, inputs in _keyed(pfs, listings, join=False).items():
            grouped.setdefault(key, []).extend(inputs)
    return [tuple(grouped[key]) for key in sorted(grouped)]


def _walk(inp: Input, listings: _Listings) -> list[tuple[DatumInput, ...]]:
    if inp.pfs is not None:
        return _pfs(inp.pfs, listings)
    if inp.cron is not None:  # its repo read as glob /*: one datum per tick file
        return _pfs(inp.cron.as_pfs(), listings)
    if inp.cross is not None:
        return _cross(inp.cross, listings)
    if inp.join is not None:
        return _join(inp.join, listings)
    if inp.group is not None:
        return _group(inp.group, listings)
    return [datum for child in inp.children for datum in _walk(child, listings)]


def expand(input_spec: Input, commits: Commits, *, sort: bool = True) -> list[Datum]:
    """The datums of `input_spec` over `commits[(repo, branch)] = (commit id, manifest)`.

    Raises CommitNotFound when an input's (repo, branch) is missing from `commits`.
    """
    datums = [Datum(parts) for parts in _walk(input_spec, _Listings(commits))]
    if _has_union(input_spec):  # only a union can yield the same datum twice
        datums = _first_of_each(datums)
    return sort_datums(datums) if sort else datums


def _first_of_each(datums: list[Datum]) -> list[Datum]:
    seen: set[str] = set()
    unique = []
    for datum in datums:
        if datum.id not in seen:
            seen.add(datum.id)
            unique.append(datum)
    return unique


def _has_union(inp: Input) -> bool:
    return inp.union is not None or any(_has_union(c) for c in inp.children)


def sort_datums(datums: list[Datum]) -> list[Datum]:
    """Sorted by sort_key; equal keys (union siblings from different repos) ordered by id."""
    ordered = sorted(datums, key=lambda d: d.sort_key)
    if any(a.sort_key == b.sort_key for a, b in zip(ordered, ordered[1:])):
        ordered.sort(key=lambda d: (d.sort_key, d.id))
    return ordered


__all__ = [
    "Commits", "Datum", "DatumInput", "changed_nodes", "datum_hash", "expand", "node_hash", "pfs_datums", "sole_pfs",
    "sort_datums",
]
