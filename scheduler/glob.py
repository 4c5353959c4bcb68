"""Pachyderm 1.6+ glob patterns, compiled to automata that never backtrack.

Nodes are files, the directories implied by file paths, and the root. Paths are canonical:
a leading `/`, no trailing `/`, and the root is `""`, so only the pattern `/` matches it.

Syntax (Pachyderm's gobwas/ohmyglob with `/` as the separator):
`*` any run of non-`/` characters (maybe empty); `**` any run, `/` included; `?` one non-`/`
character; `[abc]`, `[a-z]`, `[!abc]` character classes (`^` is literal, and, as in
Pachyderm, a class can match `/`); `{a,b}` alternatives (which may contain `/`); `\\x` a
literal `x`; `(a|b)` a capture group, also `@( *( +( ?( !(` as in ohmyglob (1.9.4+),
so a literal `(` must be escaped. Dotfiles match `*`.

Why automata and not Python regexes: `re` backtracks, so `/**a**a**a...c` against one long
name runs for hours, and every job planned from the spec hangs with it. Here a pattern becomes
a Thompson NFA, run as a DFA built lazily while matching (each path costs O(len(path)) once
the states it visits exist, and at most O(len(path) * len(pattern)) while they are being made).
`!(...)` is a negative look-ahead; its table is filled by one backward pass over the path, so
it stays linear too. `reference_regex` keeps the old translation for tests to compare against.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from storage.errors import InvalidGlob

_QUANTIFIERS = {"@": "", "*": "*", "+": "+", "?": "?"}
MAX_PATTERN_LENGTH = 4096  # Pachyderm's paths are at most this long; a longer glob is a mistake
MAX_NESTING = 64  # braces and groups inside each other; deeper is refused, not a RecursionError
MAX_DFA_STATES = 4096  # states cached per pattern; past it the cache restarts (still linear)

# AST nodes (tuples): ("lit", c) ("any1",) ("class", ((lo, hi), ...), negate) ("star",) ("dstar",)
# ("alt", (seq, ...)) ("group", kind, (seq, ...), anchored_at_end); a seq is a tuple of nodes.
Node = tuple[Any, ...]
Seq = tuple[Node, ...]


def normalize(pattern: str) -> str:
    """Go's path.Clean of '/' + pattern, with the root spelled '' (Pachyderm's clean())."""
    out: list[str] = []
    for seg in pattern.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    return "".join("/" + seg for seg in out)


def canonical_path(path: str) -> str:
    """A node path as the matcher sees it: '/a/b' for files and directories, '' for the root."""
    path = path.rstrip("/")
    return path if not path or path.startswith("/") else "/" + path


class _Parser:
    """Recursive descent over one pattern into an AST; notes whether it is a plain literal."""

    def __init__(self, pattern: str, source: str) -> None:
        self.p, self.i, self.source = pattern, 0, source
        self.literal = True
        self.depth = 0

    def fail(self, why: str) -> InvalidGlob:
        return InvalidGlob(f"invalid glob '{self.source}': {why}")

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.p[j] if j < len(self.p) else ""

    def sequence(self, stops: str) -> Seq:
        """Parse until a stop character (not consumed) or the end."""
        parts: list[Node] = []
        while self.i < len(self.p) and self.peek() not in stops:
            parts.append(self.atom())
        return tuple(parts)

    def atom(self) -> Node:
        c, nxt = self.peek(), self.peek(1)
        if c in _QUANTIFIERS or c == "!":
            if nxt == "(":
                self.i += 2
                return self.capture(c)
        if c == "*":
            self.literal = False
            if nxt == "*":
                self.i += 2
                return ("dstar",)
            self.i += 1
            return ("star",)
        if c == "?":
            self.literal = False
            self.i += 1
            return ("any1",)
        if c == "[":
            self.i += 1
            return self.char_class()
        if c == "{":
            self.i += 1
            return self.alternatives()
        if c == "(":
            self.i += 1
            return self.capture("@")
        if c == "\\":
            if self.i + 1 >= len(self.p):
                raise self.fail("trailing '\\'")
            self.i += 2
            return ("lit", nxt)
        self.i += 1
        return ("lit", c)

    def nested(self, stops: str, separator: str) -> tuple[Seq, ...]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(f"more than {MAX_NESTING} nested groups or braces")
        options = [self.sequence(stops)]
        while self.peek() == separator:
            self.i += 1
            options.append(self.sequence(stops))
        self.depth -= 1
        return tuple(options)

    def alternatives(self) -> Node:
        self.literal = False
        options = self.nested(",}", ",")
        if self.peek() != "}":
            raise self.fail("unbalanced '{'")
        self.i += 1
        return ("alt", options)

    def capture(self, kind: str) -> Node:
        self.literal = False
        options = self.nested("|)", "|")
        if self.peek() != ")":
            raise self.fail("unbalanced '('")
        self.i += 1
        # ohmyglob's !(...): anything within a segment that does not start with the group,
        # anchored to the end when nothing follows the group in the pattern.
        return ("group", kind, options, self.i >= len(self.p))

    def char_class(self) -> Node:
        self.literal = False
        negate = self.peek() == "!"
        if negate:
            self.i += 1
        members: list[tuple[str, str]] = []
        while self.peek() != "]":
            if self.i >= len(self.p):
                raise self.fail("unbalanced '['")
            lo = self.class_char()
            if self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.i += 1
                hi = self.class_char()
                if hi < lo:
                    raise self.fail(f"bad range '{lo}-{hi}'")
                members.append((lo, hi))
            else:
                members.append((lo, lo))
        self.i += 1
        if not members:
            raise self.fail("empty character class '[]'")
        return ("class", tuple(members), negate)

    def class_char(self) -> str:
        c = self.peek()
        if c == "\\":
            if self.i + 1 >= len(self.p):
                raise self.fail("unbalanced '['")
            self.i += 2
            return self.p[self.i - 1]
        self.i += 1
        return c


# ---- the reference translation (Python regex), kept for tests and comparisons ------------------

def _regex_seq(seq: Seq) -> str:
    return "".join(_regex_node(node) for node in seq)


def _regex_node(node: Node) -> str:
    kind = node[0]
    if kind == "lit":
        char: str = node[1]
        return re.escape(char)
    if kind == "any1":
        return "[^/]"
    if kind == "star":
        return "[^/]*"
    if kind == "dstar":
        return ".*"
    if kind == "class":
        members = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in node[1])
        return "[" + ("^" if node[2] else "") + members + "]"
    if kind == "alt":
        return "(?:" + "|".join(_regex_seq(s) for s in node[1]) + ")"
    _, group, options, at_end = node
    body = "|".join(_regex_seq(s) for s in options)
    if group == "!":
        return f"((?:(?!(?:{body}){'$' if at_end else ''})[^/]*))"
    quant = _QUANTIFIERS[group]
    return f"((?:{body}){quant})" if quant else f"({body})"


def reference_regex(pattern: str) -> re.Pattern[str]:
    """The backtracking regex herd used before the automaton (exponential on some patterns)."""
    norm = normalize(pattern)
    return re.compile(_regex_seq(_Parser(norm, pattern).sequence("")), re.DOTALL)


# ---- the automaton ---------------------------------------------------------------------------

# Character tests on NFA edges: a literal character, "not '/'" or "anything", or a class.
_NOT_SLASH = ("nslash",)
_ANY = ("any",)


def _accepts(test: tuple[Any, ...], ch: str) -> bool:
    kind = test[0]
    if kind == "lit":
        literal: str = test[1]
        return ch == literal
    if kind == "nslash":
        return ch != "/"
    if kind == "any":
        return True
    inside = any(lo <= ch <= hi for lo, hi in test[1])
    negated: bool = test[2]
    return inside != negated


class _Nfa:
    """A Thompson NFA: character edges, epsilon edges, and look-ahead guards (for `!(`)."""

    def __init__(self) -> None:
        self.chars: list[list[tuple[tuple[Any, ...], int]]] = []
        self.eps: list[list[int]] = []
        self.guards: list[list[tuple[int, int]]] = []  # (look-ahead index, target)
        self.lookaheads: list[tuple[int, int, bool]] = []  # (body start, body end, anchored)

    def state(self) -> int:
        self.chars.append([])
        self.eps.append([])
        self.guards.append([])
        return len(self.chars) - 1

    def seq(self, seq: Seq) -> tuple[int, int]:
        start = end = self.state()
        for node in seq:
            s, e = self.node(node)
            self.eps[end].append(s)
            end = e
        return start, end

    def options(self, options: tuple[Seq, ...]) -> tuple[int, int]:
        start, end = self.state(), self.state()
        for option in options:
            s, e = self.seq(option)
            self.eps[start].append(s)
            self.eps[e].append(end)
        return start, end

    def node(self, node: Node) -> tuple[int, int]:
        kind = node[0]
        if kind in ("lit", "any1", "class"):
            test = _NOT_SLASH if kind == "any1" else node
            start, end = self.state(), self.state()
            self.chars[start].append((test, end))
            return start, end
        if kind in ("star", "dstar"):
            loop, end = self.state(), self.state()
            self.chars[loop].append((_ANY if kind == "dstar" else _NOT_SLASH, loop))
            self.eps[loop].append(end)
            return loop, end
        if kind == "alt":
            return self.options(node[1])
        _, group, options, at_end = node
        if group == "!":
            body = self.options(options)  # built first: inner look-aheads get lower indexes
            self.lookaheads.append((*body, at_end))
            start, loop, end = self.state(), self.state(), self.state()
            self.guards[start].append((len(self.lookaheads) - 1, loop))
            self.chars[loop].append((_NOT_SLASH, loop))
            self.eps[loop].append(end)
            return start, end
        s, e = self.options(options)
        start, end = self.state(), self.state()
        self.eps[start].append(s)
        self.eps[e].append(end)
        if group in ("?", "*"):
            self.eps[start].append(end)
        if group in ("*", "+"):
            self.eps[e].append(s)
        return start, end


@dataclass(eq=False)
class _DState:
    """A lazily built DFA state: a closed set of NFA states and the transitions seen so far."""

    nfa: frozenset[int]
    accept: bool
    next: dict[str, _DState] = field(default_factory=dict)


class _Matcher:
    """Full-match test of one compiled pattern; no backtracking, no recursion."""

    def __init__(self, seq: Seq) -> None:
        nfa = _Nfa()
        self.start, self.final = nfa.seq(seq)
        self.nfa = nfa
        self.guarded = bool(nfa.lookaheads)
        if self.guarded:
            self._reverse()
        else:
            self._reset()

    # -- guard-free patterns: a DFA made on demand --
    def _reset(self) -> None:
        self.cache: dict[frozenset[int], _DState] = {}
        self.dead = self._dstate(frozenset())
        self.initial = self._dstate(self._close({self.start}))

    def _dstate(self, states: frozenset[int]) -> _DState:
        found = self.cache.get(states)
        if found is None:
            found = self.cache[states] = _DState(states, self.final in states)
        return found

    def _close(self, states: Iterable[int], allowed: Any = None, pos: int = 0) -> frozenset[int]:
        eps, guards = self.nfa.eps, self.nfa.guards
        seen = set(states)
        todo = list(seen)
        while todo:
            s = todo.pop()
            for t in eps[s]:
                if t not in seen:
                    seen.add(t)
                    todo.append(t)
            for la, t in guards[s]:
                if t not in seen and not allowed[la][pos]:
                    seen.add(t)
                    todo.append(t)
        return frozenset(seen)

    def _move(self, states: Iterable[int], ch: str) -> set[int]:
        chars = self.nfa.chars
        return {t for s in states for test, t in chars[s] if _accepts(test, ch)}

    def _step(self, state: _DState, ch: str) -> _DState:
        if len(self.cache) > MAX_DFA_STATES:
            self._reset()  # adversarial patterns: keep memory bounded, each step stays O(pattern)
        nxt = self._dstate(self._close(self._move(state.nfa, ch)))
        state.next[ch] = nxt
        return nxt

    def fullmatch(self, path: str) -> bool:
        if self.guarded:
            return self._guarded_match(path)
        state, dead = self.initial, self.dead
        table = state.next
        for ch in path:
            nxt = table.get(ch)
            if nxt is None:
                nxt = self._step(state, ch)
            if nxt is dead:
                return False
            state, table = nxt, nxt.next
        return state.accept

    # -- patterns with !(...): NFA simulation with look-ahead tables --
    def _reverse(self) -> None:
        nfa = self.nfa
        self.rchars: list[list[tuple[tuple[Any, ...], int]]] = [[] for _ in nfa.chars]
        self.reps: list[list[int]] = [[] for _ in nfa.chars]
        self.rguards: list[list[tuple[int, int]]] = [[] for _ in nfa.chars]
        for s in range(len(nfa.chars)):
            for test, t in nfa.chars[s]:
                self.rchars[t].append((test, s))
            for t in nfa.eps[s]:
                self.reps[t].append(s)
            for la, t in nfa.guards[s]:
                self.rguards[t].append((la, s))

    def _lookahead_tables(self, path: str) -> list[list[bool]]:
        """tables[la][i]: the look-ahead's body matches at i (to the end when anchored)."""
        tables: list[list[bool]] = []
        n = len(path)
        for start, end, anchored in self.nfa.lookaheads:  # inner ones come first
            table = [False] * (n + 1)
            current: set[int] = set()
            for i in range(n, -1, -1):
                if i == n or not anchored:
                    current.add(end)
                current = self._rclose(current, tables, i)
                table[i] = start in current
                if i and current:
                    ch = path[i - 1]
                    current = {s for t in current for test, s in self.rchars[t] if _accepts(test, ch)}
            tables.append(table)
        return tables

    def _rclose(self, states: set[int], tables: list[list[bool]], pos: int) -> set[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            t = todo.pop()
            for s in self.reps[t]:
                if s not in seen:
                    seen.add(s)
                    todo.append(s)
            for la, s in self.rguards[t]:
                if s not in seen and not tables[la][pos]:
                    seen.add(s)
                    todo.append(s)
        return seen

    def _guarded_match(self, path: str) -> bool:
        tables = self._lookahead_tables(path)
        current = self._close({self.start}, tables, 0)
        for i, ch in enumerate(path, 1):
            current = self._close(self._move(current, ch), tables, i)
            if not current:
                return False
        return self.final in current


@dataclass(frozen=True)
class Glob:
    """A compiled glob: `match(path)` says whether a node path matches it."""

    pattern: str
    normalized: str
    matcher: _Matcher | _RegexMatcher = field(repr=False, compare=False)
    literal: str | None  # the exact node path when the pattern has no metacharacter

    def match(self, path: str) -> bool:
        """True when the node at `path` ('/' or '' for the root) is matched."""
        path = canonical_path(path)
        if self.literal is not None:
            return path == self.literal
        return self.matcher.fullmatch(path)


def compile_glob(pattern: str) -> Glob:
    """Compile a Pachyderm glob; InvalidGlob names the pattern when it is malformed."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise InvalidGlob(f"invalid glob '{pattern}': the pattern is empty")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidGlob(f"invalid glob '{pattern[:40]}...': longer than {MAX_PATTERN_LENGTH} characters")
    norm = normalize(pattern)
    parser = _Parser(norm, pattern)
    body = parser.sequence("")
    if parser.i != len(norm):  # pragma: no cover - sequence("") always consumes everything
        raise parser.fail("unexpected character")
    literal = _unescape(norm) if parser.literal else None
    matcher = _RegexMatcher(body) if _cannot_backtrack(body) else _Matcher(body)
    return Glob(pattern=pattern, normalized=norm, matcher=matcher, literal=literal)


def _cannot_backtrack(seq: Seq) -> bool:
    """Whether Python's `re` runs this pattern in O(len(path) * len(pattern)): the common globs.

    Split at literal '/'s, a flat pattern (no class that can match '/', no braces or groups
    other than fixed-width, slash-free alternatives) qualifies when no segment holds two of
    `*`/`**` and there is at most one `**`. A `*` cannot cross a '/' and the rest of its segment
    has a bounded width, so one length at most leads on to the next segment; the single `**`
    can stop at any position, but from each one the rest of the pattern spans a fixed number of
    segments of the path. A failed match thus rescans each part of the path a bounded number of
    times, never a product of choices as in `/**a**a**c` or `/*a*a*c`.
    """
    per_segment, doubles = 0, 0
    for node in seq:
        kind = node[0]
        if kind == "lit" and node[1] == "/":
            per_segment = 0
        elif kind in ("star", "dstar"):
            per_segment += 1
            doubles += kind == "dstar"
            if per_segment > 1 or doubles > 1:
                return False
        elif not _fixed_width(node):
            return False
    return True


def _fixed_width(node: Node) -> bool:
    """A bounded-width item that never matches '/': a literal, `?`, a class, or an alternative
    (`{a,b}`, `(a|b)`, `@(a|b)`) of such items."""
    kind = node[0]
    if kind == "lit":
        char: str = node[1]
        return char != "/"
    if kind == "any1":
        return True
    if kind == "class":
        return not node[2] and not any(lo <= "/" <= hi for lo, hi in node[1])
    options = node[1] if kind == "alt" else node[2] if kind == "group" and node[1] == "@" else None
    return options is not None and all(_fixed_width(item) for option in options for item in option)


class _RegexMatcher:
    """The fast path for patterns `_cannot_backtrack` accepts: one C-level regex match."""

    def __init__(self, seq: Seq) -> None:
        self.fullmatch_regex = re.compile(_regex_seq(seq), re.DOTALL).fullmatch

    def fullmatch(self, path: str) -> bool:
        return self.fullmatch_regex(path) is not None


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text, flags=re.DOTALL)


def directories(file_paths: Iterable[str]) -> set[str]:
    """Every directory implied by the file paths, the root ('') included."""
    dirs: set[str] = {""}
    add = dirs.add
    for path in file_paths:
        cut = path.rfind("/")
        while cut > 0:
            parent = path[:cut]
            if parent in dirs:
                break  # its ancestors were added with it
            add(parent)
            cut = path.rfind("/", 0, cut)
    return dirs


def match_nodes(pattern: str | Glob, file_paths: Iterable[str]) -> list[str]:
    """The nodes (files, implicit directories, the root '/') the pattern matches, sorted by path."""
    glob = pattern if isinstance(pattern, Glob) else compile_glob(pattern)
    files = file_paths if isinstance(file_paths, (set, frozenset, dict)) else set(file_paths)
    if glob.literal is not None:
        return [_display(glob.literal)] if _node_exists(glob.literal, files) else []
    matcher = glob.matcher
    fullmatch = matcher.fullmatch_regex if isinstance(matcher, _RegexMatcher) else matcher.fullmatch
    nodes = [n for n in files if fullmatch(n)]
    nodes += [d for d in directories(files) if fullmatch(d)]
    nodes.sort()
    if nodes and nodes[0] == "":
        nodes[0] = "/"
    return nodes


def captures(pattern: str | Glob, path: str) -> tuple[str, ...] | None:
    """The text each capture group `(…)` took when the pattern matched node `path`, in the order
    the groups open; None when it does not match. For join_on / group_by keys.

    Groups split a path as a regex does (leftmost alternative first, quantifiers greedy: the
    first split a backtracking matcher would accept), but found by a Pike VM (every thread in
    lockstep, in priority order), so the work is O(len(path) * len(pattern)) even where
    backtracking explores every split, as `/(**)a**a**a**c**` does on a path that matches.
    """
    glob = pattern if isinstance(pattern, Glob) else compile_glob(pattern)
    node = canonical_path(path)
    if glob.literal is not None:
        return () if node == glob.literal else None
    if not glob.match(node):
        return None
    program = _capture_program(glob.normalized)
    if program is None:
        raise InvalidGlob(f"invalid glob '{glob.pattern}': herd cannot read capture groups past a '!(' group")
    if isinstance(program, re.Pattern):
        found = program.fullmatch(node)
        return found.groups(default="") if found is not None else None
    return program.run(node)


def reads_captures(pattern: str) -> bool:
    """Whether `captures` can read this pattern's groups: all but those with a `!(` group (a
    look-ahead, which the Pike VM does not model; a backtracking regex could hang on it)."""
    return _capture_program(compile_glob(pattern).normalized) is not None


class _CaptureProgram:
    """A glob as a list of instructions with capture slots (re2's Pike VM form):
    ("char", test) ("split", preferred, other) ("jmp", to) ("save", slot) ("match",)."""

    def __init__(self, seq: Seq) -> None:
        self.code: list[tuple[Any, ...]] = []
        self.groups = 0
        self.seq(seq)
        self.code.append(("match",))

    def emit(self, op: tuple[Any, ...]) -> int:
        self.code.append(op)
        return len(self.code) - 1

    def patch(self, at: int, op: tuple[Any, ...]) -> None:
        self.code[at] = op

    def seq(self, seq: Seq) -> None:
        for node in seq:
            self.node(node)

    def node(self, node: Node) -> None:
        kind = node[0]
        if kind == "lit":
            self.emit(("char", ("lit", node[1])))
        elif kind == "any1":
            self.emit(("char", _NOT_SLASH))
        elif kind == "class":
            self.emit(("char", node))
        elif kind in ("star", "dstar"):
            self.repeat(lambda: self.emit(("char", _NOT_SLASH if kind == "star" else _ANY)), at_least_once=False)
        elif kind == "alt":
            self.options(node[1])
        else:
            _, quant, options, _at_end = node
            slot = self.groups
            self.groups += 1
            self.emit(("save", 2 * slot))

            def body() -> None:
                self.options(options)

            if quant == "@":
                body()
            elif quant == "?":
                split = self.emit(("split",))
                body()
                self.patch(split, ("split", split + 1, len(self.code)))
            else:
                self.repeat(body, at_least_once=quant == "+")
            self.emit(("save", 2 * slot + 1))

    def repeat(self, body: Callable[[], Any], *, at_least_once: bool) -> None:
        # The body is emitted once (its groups keep one number each); greedy: another round first.
        if at_least_once:
            start = len(self.code)
            body()
            self.emit(("split", start, len(self.code) + 1))
            return
        loop = self.emit(("split",))
        body()
        self.emit(("jmp", loop))
        self.patch(loop, ("split", loop + 1, len(self.code)))

    def options(self, options: tuple[Seq, ...]) -> None:
        jumps = []
        for i, option in enumerate(options):
            split = self.emit(("split",)) if i < len(options) - 1 else None
            self.seq(option)
            if split is not None:
                jumps.append(self.emit(("jmp",)))
                self.patch(split, ("split", split + 1, len(self.code)))  # earlier options first
        for jump in jumps:
            self.patch(jump, ("jmp", len(self.code)))

    def _closure(self, pc: int) -> tuple[tuple[int, tuple[int, ...]], ...]:
        """The char/match instructions reachable from `pc` without reading a character, in
        priority order (depth first, preferred branch first), each with the capture slots its
        first path saves: made once per instruction, so a run only reads tables."""
        found: list[tuple[int, tuple[int, ...]]] = []
        seen: set[int] = set()
        stack: list[tuple[int, tuple[int, ...]]] = [(pc, ())]
        while stack:
            pc, saves = stack.pop()
            if pc in seen:
                continue
            seen.add(pc)
            op = self.code[pc]
            if op[0] == "jmp":
                stack.append((op[1], saves))
            elif op[0] == "split":
                stack.append((op[2], saves))
                stack.append((op[1], saves))
            elif op[0] == "save":
                stack.append((pc + 1, saves + (op[1],)))
            else:
                found.append((pc, saves))
        return tuple(found)

    def _tables(self) -> None:
        self.closures = [self._closure(pc) for pc in range(len(self.code))]
        self.tests = [op[1] if op[0] == "char" else None for op in self.code]

    def run(self, path: str) -> tuple[str, ...] | None:
        if not hasattr(self, "closures"):
            self._tables()
        closures, tests, match = self.closures, self.tests, len(self.code) - 1
        # A thread: (pc of a char or match instruction, capture slots); the list's order is the
        # threads' priority, and a pc another thread reached first in a step is taken.
        empty = [-1] * (2 * self.groups)
        threads = [(target, _saved(empty, saves, 0)) for target, saves in closures[0]]
        for i, ch in enumerate(path):
            following: list[tuple[int, list[int]]] = []
            seen: set[int] = set()
            for pc, slots in threads:
                test = tests[pc]
                if test is None or not _accepts(test, ch):
                    continue
                for target, saves in closures[pc + 1]:
                    if target not in seen:
                        seen.add(target)
                        following.append((target, _saved(slots, saves, i + 1) if saves else slots))
            threads = following
            if not threads:
                return None
        for pc, slots in threads:
            if pc == match:  # the first is the split a regex would take
                return tuple(path[slots[2 * g]:slots[2 * g + 1]] if slots[2 * g] >= 0 else ""
                             for g in range(self.groups))
        return None


def _saved(slots: list[int], saves: tuple[int, ...], pos: int) -> list[int]:
    copy = list(slots)
    for slot in saves:
        copy[slot] = pos
    return copy


_PROGRAMS: dict[str, re.Pattern[str] | _CaptureProgram | None] = {}


def _capture_program(normalized: str) -> re.Pattern[str] | _CaptureProgram | None:
    """How to read a pattern's groups: Python's `re` where `_cannot_backtrack` proves it linear
    once plain groups are read as their contents (`/(*).csv` is `/*.csv`: 100x faster than the
    Pike VM), else the Pike VM; None for a `!(` group."""
    if normalized not in _PROGRAMS:
        if len(_PROGRAMS) > 256:  # a cache for the few globs of a job, not a leak
            _PROGRAMS.clear()
        body = _Parser(normalized, normalized).sequence("")
        program: re.Pattern[str] | _CaptureProgram | None = None
        if _cannot_backtrack(_inline_groups(body)):
            program = re.compile(_regex_seq(body), re.DOTALL)
        elif not _has_negation(body):
            program = _CaptureProgram(body)
        _PROGRAMS[normalized] = program
    return _PROGRAMS[normalized]


def _inline_groups(seq: Seq) -> Seq:
    """`seq` with each `(x)` / `@(x)` of one option replaced by `x`: a capture does not change
    how a regex backtracks."""
    out: list[Node] = []
    for node in seq:
        if node[0] == "group" and node[1] == "@" and len(node[2]) == 1:
            out.extend(_inline_groups(node[2][0]))
        else:
            out.append(node)
    return tuple(out)


def _has_negation(seq: Seq) -> bool:
    for node in seq:
        if node[0] == "group" and (node[1] == "!" or any(_has_negation(o) for o in node[2])):
            return True
        if node[0] == "alt" and any(_has_negation(o) for o in node[1]):
            return True
    return False


_TEMPLATE_VAR = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def expand_captures(template: str, path: str, groups: tuple[str, ...]) -> str:
    """`template` with `$1` / `${1}` replaced by capture group 1, `$0` by the whole matched
    `path` and `$$` by `$`, as Go's regexp.Expand (Pachyderm's glob Replace): a name that is not
    a group number in range (`$9` of two groups, `$1x`, which is `${1x}`) expands to nothing."""
    values = (canonical_path(path), *groups)

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        return values[int(name)] if name.isdigit() and len(name) < 10 and int(name) < len(values) else ""

    return _TEMPLATE_VAR.sub(one, template)


def _node_exists(path: str, files: Iterable[str]) -> bool:
    if path == "" or path in files:
        return True
    prefix = path + "/"
    return any(f.startswith(prefix) for f in files)


def _display(path: str) -> str:
    return path or "/"


def subtree(path: str, sorted_files: list[str]) -> list[str]:
    """The files at or below node `path` ('/' is the root), from a sorted list of file paths."""
    node = canonical_path(path)
    if node == "":
        return sorted_files
    i = bisect_left(sorted_files, node)
    if i < len(sorted_files) and sorted_files[i] == node:
        return [node]  # a file
    # Everything under `node/` is one contiguous run of the sorted list: '0' follows '/'.
    return sorted_files[bisect_left(sorted_files, node + "/"):bisect_left(sorted_files, node + "0")]


__all__ = [
    "Glob", "canonical_path", "captures", "compile_glob", "directories", "expand_captures", "match_nodes", "normalize",
    "reads_captures", "reference_regex", "subtree",
]
