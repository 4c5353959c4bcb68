"""Pipeline specs: Pachyderm's own example specs parse unchanged; every rejection names its field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.spec import (
    PipelineSpec, is_shell_name, load_documents, parse_duration, parse_quantity, parse_spec, valid_pipeline_name,
)
from storage.errors import InvalidArgument, InvalidSpec
from storage.paths import NAME_RULE, is_valid_name


def parse_specs(text: str | bytes, source: str | None = None) -> list[PipelineSpec]:
    """Every spec in a file, read as `create-pipeline -f` reads it: its documents, each validated."""
    return [parse_spec(doc) for doc in load_documents(text, source)]


# Pachyderm 1.x examples, as users have them on disk (opencv: edges + montage; word_count).
EDGES = """{
  "pipeline": {
    "name": "edges"
  },
  "transform": {
    "cmd": [ "python3", "/edges.py" ],
    "image": "pachyderm/opencv"
  },
  "input": {
    "atom": {
      "repo": "images",
      "glob": "/*"
    }
  }
}
"""

MONTAGE = """{
  "pipeline": {
    "name": "montage"
  },
  "input": {
    "cross": [ {
      "atom": {
        "glob": "/",
        "repo": "images"
      }
    },
    {
      "atom": {
        "glob": "/",
        "repo": "edges"
      }
    } ]
  },
  "transform": {
    "cmd": [ "sh" ],
    "image": "v4tech/imagemagick",
    "stdin": [ "montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find /pfs -type f | sort) /pfs/out/montage.png" ]
  }
}
"""

WORD_COUNT = """{
  "pipeline": {
    "name": "scraper"
  },
  "transform": {
    "cmd": [ "bash" ],
    "stdin": [
        "FILES=/pfs/urls/*",
        "for f in $FILES",
        "do",
            "wget -e robots=off --adjust-extension --no-check-certificate --no-directories --directory-prefix /pfs/out/$(basename $f) $(cat $f)",
        "done"
    ],
    "acceptReturnCode": [4,5,6,7,8]
  },
  "input": {
      "atom": {
        "repo": "urls",
        "glob": "/*"
      }
   }
}
{
  "pipeline": {
    "name": "map"
  },
  "transform": {
    "image": "pachyderm/wordcount-map",
    "cmd": ["/map", "/pfs/scraper", "/pfs/out"]
  },
  "input": {
    "atom": {
      "repo": "scraper",
      "glob": "/*"
    }
  }
}
{
  "pipeline": {
    "name": "reduce"
  },
  "transform": {
    "cmd": ["sh"],
    "stdin": [
        "find /pfs/map -name '*' | while read count; do cat $count | awk '{ sum+=$1} END {print sum}' >/tmp/count; mv /tmp/count /pfs/out/`basename $count`; done"
    ]
  },
  "input": {
    "atom": {
      "repo": "map",
      "glob": "/"
    }
  }
}
"""

YAML_SPECS = """\
pipeline:
  name: edges
description: A pipeline that performs image edge detection by using the OpenCV library.
transform:
  cmd: [python3, /edges.py]
  image: pachyderm/opencv
input:
  pfs:
    repo: images
    glob: /*
---
pipeline:
  name: montage
transform:
  cmd: [sh]
  image: v4tech/imagemagick
  stdin:
  - montage -shadow -background SkyBlue -geometry 300x300+2+2 $(find /pfs -type f | sort) /pfs/out/montage.png
input:
  cross:
  - pfs: {repo: images, glob: /}
  - pfs: {repo: edges, glob: /}
datum_timeout: 1h5m
"""


def spec(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "pipeline": {"name": "p"},
        "transform": {"cmd": ["true"]},
        "input": {"pfs": {"repo": "in", "glob": "/*"}},
    }
    return {**base, **fields}


def rejection(obj: dict[str, Any]) -> str:
    with pytest.raises(InvalidSpec) as info:
        parse_spec(obj)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, InvalidArgument)
    return message


def test_opencv_edges_with_atom() -> None:
    (edges,) = parse_specs(EDGES)
    assert edges.name == "edges"
    assert edges.input.pfs is not None and edges.input.atom is None  # atom is folded into pfs
    assert (edges.input.pfs.name, edges.input.pfs.repo, edges.input.pfs.branch) == ("images", "images", "master")
    assert edges.transform.image == "pachyderm/opencv"
    assert edges.input_repos() == {"images"}
    assert edges.ignored_fields == []


def test_opencv_montage_cross() -> None:
    (montage,) = parse_specs(MONTAGE.encode())
    assert montage.input.kind == "cross"
    assert [c.pfs.repo for c in montage.input.children if c.pfs] == ["images", "edges"]
    assert montage.input_repos() == {"images", "edges"}


def test_word_count_three_specs_in_one_file() -> None:
    specs = parse_specs(WORD_COUNT)
    assert [s.name for s in specs] == ["scraper", "map", "reduce"]
    assert specs[0].transform.accept_return_code == [4, 5, 6, 7, 8]  # camelCase key
    assert specs[2].input.pfs is not None and specs[2].input.pfs.glob == "/"


def test_yaml_documents() -> None:
    edges, montage = parse_specs(YAML_SPECS)
    assert edges.description.startswith("A pipeline")
    assert montage.datum_timeout == 3900.0
    assert montage.input_repos() == {"images", "edges"}


def test_atom_and_pfs_have_the_same_canonical_form() -> None:
    as_atom = parse_specs(EDGES)[0]
    as_pfs = parse_spec(json.loads(EDGES.replace('"atom"', '"pfs"')))
    assert as_atom.canonical_bytes() == as_pfs.canonical_bytes()
    assert as_atom == as_pfs


@pytest.mark.parametrize("text", [EDGES, MONTAGE, WORD_COUNT, YAML_SPECS])
def test_canonical_form_parses_back_to_the_same_spec(text: str) -> None:
    for s in parse_specs(text):
        assert parse_spec(json.loads(s.canonical_bytes())) == s


def test_rich_spec_round_trips() -> None:
    s = parse_spec(spec(
        datum_timeout="1h5m0.25s", job_timeout="300ms", resource_limits={"memory": "1Gi", "gpu": 2, "cpu": 1},
        parallelism_spec={"coefficient": 0.5}, egress={"URL": "s3://x"}, incremental=False, salt="abc",
        transform={"cmd": ["x"], "env": {"A": "1"}, "stdin": ["a", "b"], "user": "", "debug": False},
        input={"cross": [{"union": [pfs_input("a", "x"), pfs_input("b", "x")]}, {"atom": {"repo": "c", "glob": "/*"}}]},
    ))
    again = parse_spec(json.loads(s.canonical_bytes()))
    assert again == s and again.canonical_bytes() == s.canonical_bytes()
    assert b'"datum_timeout":"3900.25s"' in s.canonical_bytes()


def pfs_input(repo: str, name: str) -> dict[str, Any]:
    return {"pfs": {"repo": repo, "name": name, "glob": "/*", "empty_files": True}}


def test_defaults() -> None:
    s = parse_spec(spec())
    assert s.transform.image == "ubuntu:16.04"
    assert (s.output_branch, s.datum_tries, s.description, s.salt) == ("master", 3, "", None)
    assert s.datum_timeout is None and s.job_timeout is None and s.parallelism_spec is None
    assert s.input.pfs is not None and s.input.pfs.name == "in"
    assert not s.input.pfs.empty_files and not s.input.pfs.lazy


def test_camel_case_everywhere() -> None:
    s = parse_spec(spec(
        transform={"cmd": ["x"], "workingDir": "/w", "acceptReturnCode": [1], "imagePullSecrets": ["k"]},
        input={"pfs": {"repo": "in", "glob": "/", "emptyFiles": True, "fromCommit": "abc"}},
        parallelismSpec={"constant": 4}, outputBranch="out2", datumTries=5, enableStats=True,
        datumTimeout="30s", jobTimeout="1.5h", resourceLimits={"memory": "64M"},
    ))
    assert s.transform.working_dir == "/w" and s.transform.accept_return_code == [1]
    assert s.input.pfs is not None and s.input.pfs.empty_files and s.input.pfs.from_commit == "abc"
    assert s.parallelism_spec is not None and s.parallelism_spec.constant == 4
    assert (s.output_branch, s.datum_tries, s.enable_stats) == ("out2", 5, True)
    assert (s.datum_timeout, s.job_timeout) == (30.0, 5400.0)
    assert s.resource_limits is not None and s.resource_limits.memory == 64_000_000
    assert s.ignored_fields == ["transform.image_pull_secrets"]


def test_ignored_fields_are_reported() -> None:
    s = parse_spec(spec(
        egress={"URL": "s3://bucket/dir"}, scaleDownThreshold="10m", cache_size="64M", standby=True,
        transform={"cmd": ["x"], "debug": True, "image_pull_secrets": ["k"]},
        parallelism_spec={"constant": 1, "strategy": "CONSTANT"}, incremental=False,
    ))
    assert s.ignored_fields == [
        "cache_size", "parallelism_spec.strategy", "scale_down_threshold", "standby",
        "transform.debug", "transform.image_pull_secrets",
    ]


def test_union_siblings_may_share_a_name() -> None:
    s = parse_spec(spec(input={"union": [
        {"pfs": {"name": "x", "repo": "a", "glob": "/*"}},
        {"pfs": {"name": "x", "repo": "b", "glob": "/*"}},
    ]}))
    assert s.input_repos() == {"a", "b"}
    assert s.input.names() == {"x"}


def test_resources_and_durations() -> None:
    s = parse_spec(spec(resource_requests={"cpu": "0.5", "memory": "512Mi", "disk": "1Gi", "gpu": 1},
                        resource_limits={"cpu": 2, "memory": 1024, "gpu": {"type": "nvidia.com/gpu", "number": 1}}))
    assert s.resource_requests is not None and s.resource_requests.cpu == 0.5
    assert (s.resource_requests.memory, s.resource_requests.disk) == (512 * 2**20, 2**30)
    assert s.resource_requests.gpu is not None and s.resource_requests.gpu.number == 1
    assert s.resource_limits is not None and s.resource_limits.memory == 1024
    assert parse_duration("300ms") == pytest.approx(0.3)
    assert parse_duration("1h5m") == 3900.0 and parse_duration("0") == 0.0
    assert parse_quantity("1Gi") == 2**30 and parse_quantity("64M") == 64 * 10**6 and parse_quantity("1.5k") == 1500


def test_datum_tries_zero_means_the_default() -> None:
    assert parse_spec(spec(datum_tries=0)).datum_tries == 3  # proto3: 0 is "unset"


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"transform": {"cmd": ["x"], "imagee": "y"}}, "unknown field 'transform.imagee'"),
        ({"inputs": []}, "set only one of 'input' and 'inputs'"),  # the 1.4 form: tests/scheduler/test_join_group.py
        ({"input": {"pfs": {"repo": "in", "glob": "/", "globb": "/"}}}, "unknown field 'input.pfs.globb'"),
        ({"transform": {"image": "x"}}, "'transform.cmd' is required"),
        ({"transform": {"cmd": []}}, "transform.cmd"),
        ({"pipeline": {"name": "-x"}}, "pipeline.name"),
        ({"pipeline": {"name": "a" * 64}}, "pipeline.name"),
        ({"pipeline": {"name": "a b"}}, "pipeline.name"),
        ({"transform": {"cmd": ["x"], "env": {"1X": "v"}}}, "transform.env"),
        ({"transform": {"cmd": ["x"], "env": {"X": "a\nb"}}}, "transform.env"),
        ({"transform": {"cmd": ["x"], "env": {"X": "a\x00b"}}}, "transform.env"),
        ({"parallelism_spec": {"constant": 1, "coefficient": 0.5}}, "parallelism_spec"),
        ({"input": {"pfs": {"repo": "in"}}}, "'input.pfs.glob' is required"),
        ({"input": {"pfs": {"glob": "/"}}}, "'input.pfs.repo' is required"),
        ({"input": {"pfs": {"repo": "in", "glob": ""}}}, "input.pfs.glob"),
        ({"input": {"atom": {"repo": "in", "glob": "/[a"}}}, "input.atom.glob: invalid glob '/[a'"),
        ({"input": {"pfs": {"repo": "out", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "in", "name": "out", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "bad/repo", "glob": "/"}}}, "input.pfs.repo"),
        ({"input": {"git": {"URL": "https://github.com/x/y.git"}}}, "input.git: git inputs are not supported"),
        ({"input": {"cron": {"name": "tick", "spec": "@every 1 h"}}}, "input.cron.spec: invalid cron spec '@every 1 h'"),
        ({"input": {"join": []}}, "input.join"),
        ({"input": {"group": []}}, "input.group"),
        ({"input": {}}, "input: set exactly one of"),
        ({"input": {"pfs": {"repo": "a", "glob": "/"}, "atom": {"repo": "a", "glob": "/"}}}, "input: set exactly one"),
        ({"input": {"cross": []}}, "input.cross"),
        ({"input": {"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"pfs": {"repo": "a", "glob": "/*"}}]}},
         'input.cross: name "a" was used more than once'),
        ({"input": {"cross": [
            {"union": [{"pfs": {"name": "x", "repo": "a", "glob": "/"}}, {"pfs": {"name": "x", "repo": "b", "glob": "/"}}]},
            {"pfs": {"repo": "x", "glob": "/"}},
        ]}}, 'name "x" was used more than once'),
        ({"input": {"union": [{"cross": [{"pfs": {"repo": "a", "glob": "/"}}, {"atom": {"repo": "a", "glob": "/"}}]}]}},
         "input.union[0].cross"),
        ({"output_branch": "a/b"}, "output_branch"),
        ({"datum_tries": -1}, "datum_tries"),
        ({"datum_timeout": "5 minutes"}, "datum_timeout: invalid duration '5 minutes'"),
        ({"jobTimeout": 30}, "jobTimeout: invalid duration"),
        ({"resource_limits": {"memory": "1GB"}}, "resource_limits.memory: invalid quantity '1GB'"),
        ({"resource_limits": {"cpu": "lots"}}, "resource_limits.cpu"),
        ({"incremental": True}, "incremental: incremental pipelines are not supported"),
        ({"service": {"internal_port": 80, "external_port": 30080}}, "service: service pipelines are not supported"),
        ({"spout": {"overwrite": True}}, "spout"),
    ],
)
def test_rejections_name_the_field(fields: dict[str, Any], needle: str) -> None:
    message = rejection(spec(**fields))
    assert needle in message, message
    assert message.startswith("invalid pipeline spec")


def test_messages_name_the_pipeline() -> None:
    assert rejection(spec(pipeline={"name": "edges"}, transform={})).startswith("invalid pipeline spec 'edges':")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('{"pipeline": }', "invalid JSON at line 1"),
        ('{"pipeline": {"name": "a"}} {', "invalid JSON"),
        ("pipeline: [", "invalid YAML"),
        ("", "no pipeline"),
        ("- 1\n- 2\n", "expected an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unreadable_files(text: str | bytes, needle: str) -> None:
    with pytest.raises(InvalidSpec) as info:
        parse_specs(text)
    assert needle in str(info.value)


def test_second_spec_error_names_that_spec() -> None:
    text = EDGES + json.dumps(spec(pipeline={"name": "broken"}, transform={"cmdd": ["x"]}))
    with pytest.raises(InvalidSpec, match="invalid pipeline spec 'broken': unknown field 'transform.cmdd'"):
        parse_specs(text)


def test_spec_is_immutable() -> None:
    s = parse_spec(spec())
    with pytest.raises(Exception):
        s.description = "x"  # type: ignore[misc]
    assert isinstance(s, PipelineSpec)


def test_load_documents_returns_the_specs_as_written() -> None:
    docs = load_documents(WORD_COUNT)
    assert [d["pipeline"]["name"] for d in docs] == ["scraper", "map", "reduce"]
    assert "atom" in docs[1]["input"] and "acceptReturnCode" in docs[0]["transform"]  # not normalised


# ---- hostile input: every class is a one-line InvalidSpec naming the field or the file ------

@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"pipeline": {"name": "abc\n"}}, "pipeline.name"),  # a '$' match would let the newline through
        ({"input": {"pfs": {"repo": "in", "name": "a=b", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "in", "name": "a\x00b", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "in", "name": "a/b", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "in", "name": "in\n", "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"pfs": {"repo": "in", "name": "a" * 64, "glob": "/"}}}, "input.pfs.name"),
        ({"input": {"cross": [{"pfs": {"repo": "in", "glob": "/"}}, {"pfs": {"repo": "x", "name": "$(id)", "glob": "/"}}]}},
         "input.cross[1].pfs.name"),
        ({"parallelism_spec": {"constant": 10**12}}, "parallelism_spec.constant"),
        ({"parallelism_spec": {"coefficient": 1e300}}, "parallelism_spec.coefficient"),
        ({"parallelismSpec": {"coefficient": float("inf")}}, "coefficient"),
        ({"datum_tries": 10**9}, "datum_tries"),
        ({"datum_timeout": "99999999h"}, "datum_timeout: duration '99999999h' is longer than"),
        ({"job_timeout": "9" * 400 + "h"}, "job_timeout"),
        ({"resource_limits": {"cpu": 1e12}}, "resource_limits.cpu"),
        ({"resource_limits": {"memory": "1e30Ei"}}, "resource_limits.memory"),
        ({"resource_requests": {"disk": 2**70}}, "resource_requests.disk"),
        ({"resource_limits": {"gpu": 10**6}}, "resource_limits.gpu.number"),
        ({"transform": {"cmd": ["x"], "accept_return_code": [10**30]}}, "transform.accept_return_code[0]"),
    ],
)
def test_hostile_fields_are_refused_by_dotted_name(fields: dict[str, Any], needle: str) -> None:
    message = rejection(spec(**fields))
    assert needle in message, message


def test_input_names_that_are_not_shell_identifiers_are_accepted() -> None:
    # Pachyderm's own tests name inputs like repos (`repo-1`): the runtime sets such variables.
    s = parse_spec(spec(input={"cross": [{"pfs": {"repo": "repo-1", "glob": "/*"}},
                                         {"pfs": {"repo": "in", "name": "2nd-input", "glob": "/"}}]}))
    assert {leaf.name for leaf in s.input.leaves()} == {"repo-1", "2nd-input"}


def _laughs() -> str:
    """A 687-byte style billion-laughs spec: nine aliases per level, nine levels."""
    levels = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    body = "\n".join("  " + line for line in levels)
    return ("pipeline: {name: p}\ntransform: {cmd: [\"true\"]}\ninput: {pfs: {repo: in, glob: /}}\n"
            f"metadata:\n{body}\n")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (_laughs(), "YAML aliases expand to more than"),
        ("{" + '"a": [' * 50_000 + "1" + "]" * 50_000 + "}", "nested more than"),  # JSON
        ("a: " + "[" * 50_000 + "]" * 50_000, "nested more than"),  # YAML flow
        ("".join(" " * i + "a:\n" for i in range(1_000)), "nested more than"),  # YAML block
        ("a: " + "{b: " * 50_000 + "1" + "}" * 50_000, "nested more than"),
        ("a: &a [*a]\n", "refers to a value that contains it"),
        ("".join(f"a{i}: &a{i} [*a{i - 1}]\n" if i else "a0: &a0 [1]\n" for i in range(100)), "nested more than"),
        ("pipeline: {name: p}\ndescription: " + "x" * (1 << 20), "larger than 1048576 bytes"),
    ],
    ids=["billion-laughs", "json-deep", "yaml-flow-deep", "yaml-block-deep", "yaml-map-deep", "recursive-alias",
         "alias-chain-deep", "over-1MiB"],
)
def test_hostile_files_are_refused_in_one_line_naming_the_file(text: str, needle: str) -> None:
    # Given a spec file built to exhaust memory or the stack, Then a one-line InvalidSpec names
    # the file and the problem, before anything is expanded (no RecursionError, no MemoryError).
    with pytest.raises(InvalidSpec) as info:
        parse_specs(text, source="evil.yaml")
    message = str(info.value)
    assert "'evil.yaml'" in message and needle in message and "\n" not in message, message


def test_aliases_within_bounds_still_work() -> None:
    text = "x: &cmd [sh, -c, 'true']\n---\npipeline: {name: p}\ntransform: {cmd: [sh, -c, 'true']}\n" \
           "input: {pfs: {repo: in, glob: /}}\n"
    shared = "pipeline: {name: p}\ntransform: {cmd: &c [\"true\"], stdin: *c}\ninput: {pfs: {repo: in, glob: /}}\n"
    assert parse_specs(shared)[0].transform.stdin == ["true"]
    assert len(parse_specs(text.split("---\n")[1])) == 1


# --- issue 13: one name rule (storage/paths.py) for repos, branches, inputs and pipelines -----


def _accepts(obj: dict[str, Any]) -> bool:
    try:
        parse_spec(obj)
    except InvalidSpec:
        return False
    return True


@given(st.text(alphabet=st.sampled_from("aZ9_-.\n é"), max_size=66))
@example("a" * 63)
@example("a" * 64)
@example("-x")
@example("_x")
@example("x\n")
def test_spec_names_follow_the_storage_name_rule(name: str) -> None:
    # Given any candidate name; Then a spec takes it as repo, branch and input name exactly when
    # storage does, and as pipeline name when storage does and it starts with a letter or digit
    assert _accepts(spec(input={"pfs": {"repo": name, "glob": "/*"}})) == is_valid_name(name) or name == "out"
    assert _accepts(spec(output_branch=name)) == is_valid_name(name)
    pipeline_ok = is_valid_name(name) and name[0] not in "_-"
    assert _accepts(spec(pipeline={"name": name})) == pipeline_ok == valid_pipeline_name(name)


def test_name_rejections_say_the_rule_and_name_the_field() -> None:
    message = rejection(spec(input={"pfs": {"repo": "a b", "glob": "/*"}}))
    assert "input.pfs.repo" in message and NAME_RULE in message
    message = rejection(spec(pipeline={"name": "-x"}))
    assert "pipeline.name" in message and "starting with a letter or digit" in message


@pytest.mark.parametrize(("name", "shell"), [
    ("X", True), ("_x1", True), ("PACH_JOB_ID", True), ("1X", False), ("repo-1", False), ("", False),
    ("X\n", False), ("\nX", False), ("X Y", False), ("É", False),
])
def test_shell_names(name: str, shell: bool) -> None:
    # The one rule for names a shell can export: transform.env must follow it, the worker
    # exports those that do and passes the others through env
    assert is_shell_name(name) == shell
    assert _accepts(spec(transform={"cmd": ["true"], "env": {name: "v"}})) == shell
