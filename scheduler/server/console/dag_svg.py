"""The console's DAG picture (pure): repos and pipelines laid out in columns, drawn as SVG.

Data flows left to right: an input repo, the pipeline that reads it, then the pipeline's output
repo (which carries the pipeline's name, so nodes are keyed by kind and name). A node's column
is the longest path to it from a repo nothing writes; within a column nodes are sorted by name,
so one graph is always drawn the same way. Every name is escaped: a name is user input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

REPO, PIPELINE = "repo", "pipeline"
COLUMN_WIDTH, ROW_HEIGHT = 200, 64
NODE_WIDTH, NODE_HEIGHT = 150, 36
MARGIN = 16
MAX_LABEL = 20  # characters shown in a node; the full name is its tooltip

# A pipeline's fill by its last job's state (None: no job yet).
STATE_COLOURS: dict[str | None, str] = {
    "JOB_SUCCESS": "#2e7d32",
    "JOB_RUNNING": "#1565c0",
    "JOB_STARTING": "#6a1b9a",
    "JOB_EGRESSING": "#00838f",
    "JOB_FAILURE": "#c62828",
    "JOB_KILLED": "#ef6c00",
    "JOB_UNRUNNABLE": "#795548",
    None: "#757575",
}
REPO_COLOUR = "#eceff1"

Key = tuple[str, str]  # (kind, name)


@dataclass(frozen=True)
class Node:
    kind: str  # REPO or PIPELINE
    name: str
    column: int
    row: int
    state: str | None = None  # a pipeline's last job state

    @property
    def key(self) -> Key:
        return (self.kind, self.name)

    @property
    def x(self) -> int:
        return MARGIN + self.column * COLUMN_WIDTH

    @property
    def y(self) -> int:
        return MARGIN + self.row * ROW_HEIGHT


@dataclass(frozen=True)
class Layout:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[Key, Key], ...]  # (from, to), in the direction data flows

    def node(self, key: Key) -> Node:
        return next(n for n in self.nodes if n.key == key)

    @property
    def width(self) -> int:
        columns = max((n.column for n in self.nodes), default=0) + 1
        return 2 * MARGIN + (columns - 1) * COLUMN_WIDTH + NODE_WIDTH

    @property
    def height(self) -> int:
        rows = max((n.row for n in self.nodes), default=0) + 1
        return 2 * MARGIN + (rows - 1) * ROW_HEIGHT + NODE_HEIGHT


def layout(
    pipelines: Mapping[str, Iterable[str]], repos: Iterable[str], states: Mapping[str, str | None] | None = None,
) -> Layout:
    """Nodes and edges of `pipelines` (name -> the repos it reads) and `repos` (every repo,
    output repos included); `states` gives each pipeline's last job state."""
    states = states or {}
    inputs = {name: sorted(set(reads)) for name, reads in pipelines.items()}
    keys: set[Key] = {(REPO, r) for r in repos}
    edges: set[tuple[Key, Key]] = set()
    for name, reads in inputs.items():
        keys.add((PIPELINE, name))
        keys.add((REPO, name))
        for repo in reads:
            keys.add((REPO, repo))
            edges.add(((REPO, repo), (PIPELINE, name)))
        edges.add(((PIPELINE, name), (REPO, name)))
    parents: dict[Key, list[Key]] = {key: [] for key in keys}
    for source, target in edges:
        parents[target].append(source)
    columns: dict[Key, int] = {}

    def column(key: Key, visiting: frozenset[Key]) -> int:
        # Longest path from a root; a cycle (the store refuses them, but a picture must not hang)
        # is cut where it closes.
        if key in columns:
            return columns[key]
        ups = [column(p, visiting | {key}) for p in parents[key] if p not in visiting and p != key]
        columns[key] = max(ups, default=-1) + 1
        return columns[key]

    for key in sorted(keys):
        column(key, frozenset())
    rows: dict[int, int] = {}
    nodes: list[Node] = []
    for key in sorted(keys, key=lambda k: (columns[k], k[1], k[0])):
        col = columns[key]
        row = rows.get(col, 0)
        rows[col] = row + 1
        kind, name = key
        nodes.append(Node(kind, name, col, row, states.get(name) if kind == PIPELINE else None))
    return Layout(tuple(nodes), tuple(sorted(edges)))


def href(node: Node) -> str:
    return f"/{'pipelines' if node.kind == PIPELINE else 'repos'}/{quote(node.name, safe='')}"


def _label(name: str) -> str:
    return name if len(name) <= MAX_LABEL else name[: MAX_LABEL - 1] + "\u2026"


def _edge(source: Node, target: Node) -> str:
    x1, y1 = source.x + NODE_WIDTH, source.y + NODE_HEIGHT // 2
    x2, y2 = target.x, target.y + NODE_HEIGHT // 2
    bend = max((x2 - x1) // 2, 20)
    return (f'<path class="edge" d="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" '
            f'marker-end="url(#arrow)"/>')


def _node(node: Node) -> str:
    name = escape(node.name, quote=True)
    if node.kind == PIPELINE:
        fill, text, shape_class = STATE_COLOURS.get(node.state, STATE_COLOURS[None]), "#ffffff", "pipeline"
        title = f"pipeline {name}: {escape(node.state or 'no job yet')}"
    else:
        fill, text, shape_class = REPO_COLOUR, "#263238", "repo"
        title = f"repo {name}"
    radius = 18 if node.kind == PIPELINE else 4
    state = f' data-state="{escape(node.state)}"' if node.state else ""
    return (f'<a href="{escape(href(node), quote=True)}" class="node {shape_class}" '
            f'data-kind="{node.kind}" data-name="{name}"{state}>'
            f"<title>{title}</title>"
            f'<rect x="{node.x}" y="{node.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="{radius}" '
            f'fill="{fill}" stroke="#455a64"/>'
            f'<text x="{node.x + NODE_WIDTH // 2}" y="{node.y + NODE_HEIGHT // 2 + 5}" text-anchor="middle" '
            f'fill="{text}">{escape(_label(node.name))}</text></a>')


def svg(graph: Layout) -> str:
    """The layout as one <svg> element (inline in the page: its nodes are links)."""
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{graph.width}" height="{graph.height}" '
        f'viewBox="0 0 {graph.width} {graph.height}" role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#546e7a"/></marker></defs>',
    ]
    by_key = {n.key: n for n in graph.nodes}
    parts += [_edge(by_key[s], by_key[t]) for s, t in graph.edges]
    parts += [_node(n) for n in graph.nodes]
    parts.append("</svg>")
    return "".join(parts)


def draw(
    pipelines: Mapping[str, Iterable[str]], repos: Iterable[str], states: Mapping[str, str | None] | None = None,
) -> str:
    return svg(layout(pipelines, repos, states))
