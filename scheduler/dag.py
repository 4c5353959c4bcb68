"""The pipeline graph (pure): refuse cycles and missing inputs, order pipelines, walk downstream.

A pipeline's output repo carries the pipeline's name, so the graph is `pipeline -> the repos
it reads`; data flows the other way, and cycle paths are printed in the direction data flows
(`a -> b -> a`: b reads a's output, and a reads b's).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping

from storage.errors import PipelineCycle, RepoNotFound

Pipelines = Mapping[str, Iterable[str]]  # pipeline name -> the repos it reads


def _graph(pipelines: Pipelines) -> dict[str, set[str]]:
    return {p: set(repos) for p, repos in pipelines.items()}


def _consumers(graph: dict[str, set[str]]) -> dict[str, list[str]]:
    """repo -> the pipelines that read it, sorted by name."""
    out: dict[str, list[str]] = {}
    for pipeline in sorted(graph):
        for repo in graph[pipeline]:
            out.setdefault(repo, []).append(pipeline)
    return out


def _path_back(start: str, consumers: dict[str, list[str]]) -> list[str] | None:
    """The shortest data-flow path from `start` back to itself, if there is one."""
    parent: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in consumers.get(node, []):
            if nxt == start:
                chain = [node]
                while chain[-1] != start:
                    chain.append(parent[chain[-1]])
                return [*reversed(chain), start]
            if nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return None


def check_new_pipeline(name: str, input_repos: Iterable[str], existing: Pipelines, repos: Iterable[str]) -> None:
    """Refuse a pipeline (new or updated) that would close a cycle or reads a missing repo.

    Raises PipelineCycle naming the cycle, e.g. `a -> b -> a`, or RepoNotFound naming the repo.
    """
    inputs = set(input_repos)
    graph = {**_graph(existing), name: inputs}
    cycle = _path_back(name, _consumers(graph))
    if cycle is not None:
        raise PipelineCycle(f"pipeline '{name}' would create a cycle: {' -> '.join(cycle)}")
    known = set(repos) | set(existing)  # a pipeline's output repo may not be listed yet
    for repo in sorted(inputs - known):
        raise RepoNotFound(repo)


def topological_order(pipelines: Pipelines) -> list[str]:
    """Pipelines with every upstream pipeline first; ties broken by name. PipelineCycle on a cycle."""
    graph = _graph(pipelines)
    consumers = _consumers(graph)
    waiting = {p: len({r for r in repos if r in graph}) for p, repos in graph.items()}
    ready = [p for p, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        p = heapq.heappop(ready)
        order.append(p)
        for nxt in consumers.get(p, []):
            waiting[nxt] -= 1
            if waiting[nxt] == 0:
                heapq.heappush(ready, nxt)
    if len(order) < len(graph):
        done = set(order)
        for stuck in sorted(p for p in graph if p not in done):  # some are only downstream of it
            cycle = _path_back(stuck, consumers)
            if cycle is not None:
                raise PipelineCycle(f"pipelines form a cycle: {' -> '.join(cycle)}")
    return order


def downstream(repo: str, pipelines: Pipelines) -> list[str]:
    """Every pipeline that reads `repo` directly or through other pipelines, upstream first."""
    graph = _graph(pipelines)
    consumers = _consumers(graph)
    seen: set[str] = set()
    queue = deque(consumers.get(repo, []))
    while queue:
        p = queue.popleft()
        if p not in seen:
            seen.add(p)
            queue.extend(consumers.get(p, []))
    return topological_order({p: graph[p] for p in seen})


__all__ = ["Pipelines", "check_new_pipeline", "downstream", "topological_order"]
