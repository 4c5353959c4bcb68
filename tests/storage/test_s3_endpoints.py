"""storage/s3_endpoints.py: endpoints resolved on the parameters S3's rules read, the same ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import boto3
import pytest
from botocore.config import Config

from storage import s3
from storage.s3_endpoints import ReadParametersOnly, unread_parameters


def _ruleset(*rules: Any) -> dict[str, Any]:
    params = {name: {"type": "String"} for name in ("Bucket", "Key", "Region")}
    return {"version": "1.0", "parameters": params, "rules": list(rules)}


@pytest.mark.parametrize(("rule", "read"), [
    ({"conditions": [{"fn": "isSet", "argv": [{"ref": "Key"}]}], "error": "x", "type": "error"}, True),
    ({"conditions": [], "endpoint": {"url": "https://{Key}.example"}, "type": "endpoint"}, True),
    ({"conditions": [], "endpoint": {"url": "https://{Key#a}.example"}, "type": "endpoint"}, True),
    ({"conditions": [{"fn": "getAttr", "argv": [{"ref": "Key"}, "a"], "assign": "k"}], "error": "x",
      "type": "error"}, True),
    ({"conditions": [{"fn": "stringEquals", "argv": ["Key", "x"]}], "error": "x", "type": "error"}, True),
    ({"conditions": [{"fn": "isSet", "argv": [{"ref": "Bucket"}]}],
      "endpoint": {"url": "https://{Bucket}.{Region}.example"}, "type": "endpoint"}, False),
    ({"conditions": [{"fn": "isSet", "argv": [{"ref": "KeyMarker"}]}], "error": "x", "type": "error"}, False),
])
def test_a_parameter_any_rule_names_counts_as_read(rule: dict[str, Any], read: bool) -> None:
    # Given a rule set whose rules name Key, or not (KeyMarker is another name)
    unread = unread_parameters(_ruleset(rule))
    # Then Key is dropped only when no rule names it; what the rules read is never dropped
    assert ("Key" not in unread) is read
    assert "Bucket" not in unread or "Bucket" not in str(rule)


def test_only_unread_parameters_are_dropped() -> None:
    calls: list[dict[str, Any]] = []

    def endpoint(**params: Any) -> str:
        calls.append(params)
        return "endpoint"

    resolve = ReadParametersOnly(endpoint, frozenset({"Key", "Prefix"}))
    assert resolve(Bucket="b", Key="k", Region="r") == "endpoint"
    assert calls == [{"Bucket": "b", "Region": "r"}]


@pytest.fixture(scope="module")
def unread() -> frozenset[str]:
    """What storage/s3.py found unread in the rule set its session loads (at its first client)."""
    s3._client("http://127.0.0.1:9", 1, 1.0, 1.0)
    return s3._unread


def test_s3_rules_read_no_object_key(unread: frozenset[str]) -> None:
    # The rule set of the installed botocore (what the change rests on; a later botocore whose
    # rules read Key keeps it, and this test says so)
    assert {"Key", "Prefix", "CopySource"} <= unread
    assert not {"Bucket", "Region", "Endpoint", "ForcePathStyle", "UseFIPS"} & unread


_OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("PutObject", {"Bucket": "herd-data", "Key": "jobs/j/attempts/d/1", "Body": b"x"}),
    ("GetObject", {"Bucket": "herd-data", "Key": "blobs/ab/cd"}),
    ("HeadObject", {"Bucket": "herd.dotted.bucket", "Key": "a b/ü"}),
    ("DeleteObject", {"Bucket": "herd-data", "Key": "x"}),
    ("ListObjectsV2", {"Bucket": "herd-data", "Prefix": "jobs/", "Delimiter": "/"}),
    ("CopyObject", {"Bucket": "herd-data", "Key": "to", "CopySource": "herd-data/from"}),
    ("CreateMultipartUpload", {"Bucket": "herd-data", "Key": "big"}),
    ("CreateBucket", {"Bucket": "herd-data"}),
]
_CLIENTS: list[tuple[str | None, str, dict[str, Any]]] = [
    ("http://127.0.0.1:9000", "us-east-1", {}),
    ("http://127.0.0.1:9000", "eu-west-1", {"addressing_style": "virtual"}),
    (None, "us-east-1", {}),
    (None, "eu-west-1", {"addressing_style": "path"}),
    (None, "us-gov-west-1", {"use_accelerate_endpoint": False}),
    ("https://minio.example:9000", "us-east-1", {"addressing_style": "path"}),
]


@pytest.mark.parametrize(("endpoint_url", "region", "options"), _CLIENTS)
def test_endpoints_are_those_botocore_resolves(
    endpoint_url: str | None, region: str, options: dict[str, Any], unread: frozenset[str],
) -> None:
    # Given two clients alike, one resolving on the parameters the rules read
    def client() -> Any:
        return boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name=region).client(
            "s3", endpoint_url=endpoint_url, config=Config(s3=cast(Any, options)))

    ours, botocores = client(), client()
    s3._resolve_on_read_parameters(ours, unread)
    assert isinstance(ours._ruleset_resolver._provider.resolve_endpoint, ReadParametersOnly)
    # Then every operation, on two keys each, resolves to the same endpoint in both
    for name, params in _OPERATIONS:
        operation = ours.meta.service_model.operation_model(name)
        for variant in (params, {**params, **({"Key": params["Key"] + "-2"} if "Key" in params else {})}):
            theirs = botocores._ruleset_resolver.construct_endpoint(operation, dict(variant), {})
            mine = ours._ruleset_resolver.construct_endpoint(operation, dict(variant), {})
            assert (mine.url, mine.properties, mine.headers) == (theirs.url, theirs.properties, theirs.headers)


def test_a_client_is_wrapped_once(unread: frozenset[str]) -> None:
    client: Any = s3._client("http://127.0.0.1:9", 1, 1.0, 1.0)
    wrapped = client._ruleset_resolver._provider.resolve_endpoint
    s3._resolve_on_read_parameters(client, unread)
    assert client._ruleset_resolver._provider.resolve_endpoint is wrapped
    assert not isinstance(wrapped.resolve, ReadParametersOnly)


@pytest.mark.s3
def test_new_keys_reuse_the_resolved_endpoint(s3_store: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a store on moto (over HTTP) whose rule evaluations are counted
    store = s3_store("herd")
    ruleset = store._client._ruleset_resolver._provider.ruleset
    evaluations: list[dict[str, Any]] = []
    evaluate = ruleset.evaluate

    def counted(params: dict[str, Any]) -> Any:
        evaluations.append(dict(params))
        return evaluate(params)

    monkeypatch.setattr(ruleset, "evaluate", counted)
    # When 40 objects are created, read and listed, each under a key of its own
    for i in range(40):
        assert store.put_if_absent(f"jobs/j/attempts/d{i}/1", b"v")
        assert store.get(f"jobs/j/attempts/d{i}/1") == b"v"
    assert len(store.list_children("jobs/j/attempts/")) == 40
    # Then the rules ran once per kind of request, not once per key, and never saw a key
    assert len(evaluations) < 10, len(evaluations)
    assert not any("Key" in params or "Prefix" in params for params in evaluations)


def test_a_botocore_without_rule_sets_resolves_as_it_does(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a data loader that finds no endpoint rule set for S3
    from botocore.exceptions import DataNotFoundError
    from botocore.loaders import Loader

    load = Loader.load_service_model

    def no_rule_set(self: Loader, service_name: str, type_name: str, api_version: str | None = None) -> Any:
        if type_name == "endpoint-rule-set-1":
            raise DataNotFoundError(data_path=f"{service_name}/{type_name}")
        return load(self, service_name, type_name, api_version)

    monkeypatch.setattr(Loader, "load_service_model", no_rule_set)
    monkeypatch.setattr(s3, "_unread", s3._unread)  # restored after
    # When a session is made; Then it is made, drops nothing, and leaves clients as botocore made them
    s3._new_session()
    assert s3._unread == frozenset()
    monkeypatch.setattr(Loader, "load_service_model", load)
    client: Any = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s",
                                        region_name="us-east-1").client("s3", endpoint_url="http://127.0.0.1:9")
    s3._resolve_on_read_parameters(client, s3._unread)
    assert not isinstance(client._ruleset_resolver._provider.resolve_endpoint, ReadParametersOnly)
