"""The pipeline graph: cycles and missing inputs refused, topological order, downstream walk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduler.dag import check_new_pipeline, downstream, topological_order
from storage.errors import PipelineCycle, RepoNotFound

# images -> edges -> montage (montage also reads images); words -> count
PIPELINES = {"edges": {"images"}, "montage": {"images", "edges"}, "count": {"words"}}
REPOS = {"images", "words", "edges", "montage", "count"}


def test_accepts_a_pipeline_over_existing_repos() -> None:
    check_new_pipeline("thumbs", {"images", "edges"}, PIPELINES, REPOS)


def test_refuses_a_missing_input_repo_by_name() -> None:
    with pytest.raises(RepoNotFound, match="repo 'nope' not found"):
        check_new_pipeline("thumbs", {"images", "nope"}, PIPELINES, REPOS)


def test_refuses_reading_its_own_output() -> None:
    with pytest.raises(PipelineCycle, match="a -> a"):
        check_new_pipeline("a", {"a"}, {}, set())


def test_refuses_a_two_step_cycle() -> None:
    # Given b reads a, When a is created reading b, Then the cycle is named in data-flow order.
    with pytest.raises(PipelineCycle, match="a -> b -> a"):
        check_new_pipeline("a", {"b"}, {"b": {"a"}}, {"b"})


def test_refuses_an_update_that_closes_a_cycle() -> None:
    # Given edges already exists, When it is updated to read montage, Then montage -> edges closes a loop.
    with pytest.raises(PipelineCycle, match="edges -> montage -> edges"):
        check_new_pipeline("edges", {"montage"}, PIPELINES, REPOS)


def test_a_pipeline_output_repo_counts_as_existing() -> None:
    check_new_pipeline("late", {"count"}, PIPELINES, {"images", "words"})


def test_topological_order_puts_upstream_first_with_ties_by_name() -> None:
    assert topological_order(PIPELINES) == ["count", "edges", "montage"]


def test_topological_order_names_a_cycle() -> None:
    with pytest.raises(PipelineCycle, match="a -> b -> a"):
        topological_order({"a": {"b"}, "b": {"a"}, "c": {"a"}})


def test_downstream_is_transitive_and_ordered() -> None:
    assert downstream("images", PIPELINES) == ["edges", "montage"]
    assert downstream("edges", PIPELINES) == ["montage"]
    assert downstream("words", PIPELINES) == ["count"]
    assert downstream("montage", PIPELINES) == []
    assert downstream("unknown", PIPELINES) == []


@st.composite
def dags(draw: st.DrawFn) -> dict[str, set[str]]:
    """Random DAGs: pipeline p<i> reads only plain repos or pipelines with a smaller index."""
    n = draw(st.integers(0, 8))
    graph: dict[str, set[str]] = {}
    for i in range(n):
        ups = draw(st.sets(st.integers(0, max(i - 1, 0)), max_size=3)) if i else set()
        graph[f"p{i}"] = {f"p{j}" for j in ups if j < i} | {draw(st.sampled_from(["r1", "r2"]))}
    return graph


@given(dags())
def test_topological_order_respects_every_edge(graph: dict[str, set[str]]) -> None:
    order = topological_order(graph)
    assert sorted(order) == sorted(graph)
    position = {p: i for i, p in enumerate(order)}
    assert all(position[r] < position[p] for p, reads in graph.items() for r in reads if r in graph)


@given(dags())
def test_downstream_is_exactly_the_readers_closure(graph: dict[str, set[str]]) -> None:
    for start in ["r1", *graph]:
        found = set(downstream(start, graph))
        closure, frontier = set(), {start}
        while frontier:
            frontier = {p for p, reads in graph.items() if reads & frontier} - closure
            closure |= frontier
        assert found == closure


@given(dags(), st.data())
def test_adding_an_edge_back_upstream_is_refused(graph: dict[str, set[str]], data: st.DataObject) -> None:
    if len(graph) < 2:
        return
    # Given p_j downstream-or-equal of p_i, When p_i is updated to read p_j's output, a cycle is reported.
    i = data.draw(st.integers(0, len(graph) - 1))
    below = downstream(f"p{i}", graph)
    if below:
        with pytest.raises(PipelineCycle):
            check_new_pipeline(f"p{i}", graph[f"p{i}"] | {below[-1]}, graph, {"r1", "r2"})
