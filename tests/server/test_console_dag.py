"""The console's DAG picture (pure): layout in columns along the data flow, SVG with every name escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from scheduler.server.console import dag_svg
from scheduler.server.console.dag_svg import PIPELINE, REPO, STATE_COLOURS, layout
from scheduler.server.console.pages import ago, breadcrumbs, content_disposition, duration, human_size

SVG = "{http://www.w3.org/2000/svg}"


def test_a_two_stage_graph_flows_left_to_right() -> None:
    graph = layout({"first": ["in"], "second": ["first"]}, ["in", "first", "second"],
                   {"first": "JOB_SUCCESS", "second": "JOB_RUNNING"})
    columns = {n.key: n.column for n in graph.nodes}
    assert columns == {(REPO, "in"): 0, (PIPELINE, "first"): 1, (REPO, "first"): 2, (PIPELINE, "second"): 3,
                       (REPO, "second"): 4}
    assert set(graph.edges) == {((REPO, "in"), (PIPELINE, "first")), ((PIPELINE, "first"), (REPO, "first")),
                                ((REPO, "first"), (PIPELINE, "second")), ((PIPELINE, "second"), (REPO, "second"))}
    assert graph.node((PIPELINE, "second")).state == "JOB_RUNNING"


def test_a_join_waits_for_its_longest_input_and_rows_do_not_overlap() -> None:
    graph = layout({"a": ["x"], "b": ["a", "y"]}, ["x", "y", "a", "b", "lonely"])
    columns = {n.key: n.column for n in graph.nodes}
    assert columns[(PIPELINE, "b")] == 3  # after repo a (column 2), not after y (column 0)
    assert columns[(REPO, "lonely")] == 0
    positions = [(n.x, n.y) for n in graph.nodes]
    assert len(set(positions)) == len(positions)


def test_pipeline_nodes_are_coloured_by_their_last_job_state_and_link_to_their_pages() -> None:
    picture = ET.fromstring(dag_svg.draw({"p": ["r"]}, ["r", "p"], {"p": "JOB_FAILURE"}))
    links = {a.get("data-name") + "/" + a.get("data-kind"): a for a in picture.iter(SVG + "a")}
    assert links["p/pipeline"].get("href") == "/pipelines/p"
    assert links["p/repo"].get("href") == "/repos/p"
    assert links["p/pipeline"].find(SVG + "rect").get("fill") == STATE_COLOURS["JOB_FAILURE"]
    no_job = ET.fromstring(dag_svg.draw({"p": ["r"]}, ["r"]))
    fills = [a.find(SVG + "rect").get("fill") for a in no_job.iter(SVG + "a") if a.get("data-kind") == "pipeline"]
    assert fills == [STATE_COLOURS[None]]


def test_names_are_escaped_so_markup_in_them_stays_text() -> None:
    evil = '<script>alert("x")</script>&\''
    text = dag_svg.draw({evil: [evil + "-in"]}, [evil + "-in"])
    assert "<script>" not in text
    picture = ET.fromstring(text)  # still well-formed XML
    assert {a.get("data-name") for a in picture.iter(SVG + "a")} == {evil, evil + "-in"}
    assert all("<" not in (a.get("href") or "") for a in picture.iter(SVG + "a"))


def test_a_cycle_does_not_hang_the_picture() -> None:
    # the store refuses cycles, but a picture of damaged records must still draw
    graph = layout({"a": ["b"], "b": ["a"]}, ["a", "b"])
    assert {n.key for n in graph.nodes} == {(PIPELINE, "a"), (PIPELINE, "b"), (REPO, "a"), (REPO, "b")}


def test_an_empty_store_draws_an_empty_picture() -> None:
    picture = ET.fromstring(dag_svg.draw({}, []))
    assert list(picture.iter(SVG + "a")) == []


names = st.text(alphabet="abcdefgh<>&\"'-_", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(names, st.lists(names, max_size=3), max_size=6), st.lists(names, max_size=6))
def test_every_edge_goes_right_and_every_node_has_its_own_place(pipelines: dict[str, list[str]], repos: list[str]) -> None:
    graph = layout(pipelines, repos)
    nodes = {n.key: n for n in graph.nodes}
    assert set(nodes) >= {(REPO, r) for r in repos} | {(PIPELINE, p) for p in pipelines}
    acyclic = True
    try:
        from scheduler.dag import topological_order

        topological_order(pipelines)
    except Exception:  # noqa: BLE001 - a cycle among the generated pipelines
        acyclic = False
    for source, target in graph.edges:
        if acyclic:
            assert nodes[source].column < nodes[target].column
    places = [(n.column, n.row) for n in graph.nodes]
    assert len(set(places)) == len(places)
    ET.fromstring(dag_svg.svg(graph))  # always well-formed, whatever the names


def test_formatting_helpers() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert duration(start, start + timedelta(seconds=1.25)) == "1.2s"
    assert duration(start, start + timedelta(seconds=184)) == "3m04s"
    assert duration(None) == ""
    assert ago(start, start + timedelta(hours=2, minutes=5)) == "2 hours ago"
    assert human_size(5) == "5 B" and human_size(2048) == "2.0 KiB"
    assert breadcrumbs("/a/b") == [("/", "/"), ("a", "/a"), ("b", "/a/b")]
    assert breadcrumbs("/") == [("/", "/")]


def test_content_disposition_never_lets_a_file_name_into_the_header_raw() -> None:
    header = content_disposition('/dir/evil"; name\r\nX-Injected: 1.txt')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="evil___name__X-Injected__1.txt"')
    assert header.endswith("filename*=UTF-8''evil%22%3B%20name%0D%0AX-Injected%3A%201.txt")
    assert 'filename="download"' in content_disposition("/")
