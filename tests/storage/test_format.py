"""The storage format marker (`_herd/format`): written once, checked on every open (issue 11).

Real stores: a local folder and moto's S3 server over HTTP, opened through the factory as the
CLI and the services open them, and the `herd` CLI itself in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from storage.errors import DataCorrupted, FormatTooNew
from storage.factory import check_format, open_object_store
from storage.layout import FORMAT_KEY, STORAGE_FORMAT
from storage.settings import StorageSettings
from tests.fixtures.s3 import MotoServer, fresh_bucket

HERD = Path(sys.executable).with_name("herd")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> StorageSettings:
    """Where a fresh store is, as HERD_STORAGE (and the endpoint) name it."""
    if request.param == "local":
        return StorageSettings(storage=f"file://{tmp_path / 'store'}")
    moto: MotoServer = request.getfixturevalue("moto_server")
    return StorageSettings(storage=f"s3://{fresh_bucket()}/herd", s3_endpoint_url=moto.url)


def _env(settings: StorageSettings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERD_")}
    env["HERD_STORAGE"] = settings.storage
    if settings.s3_endpoint_url:
        env["HERD_S3_ENDPOINT_URL"] = str(settings.s3_endpoint_url)
    return env


def test_first_open_writes_the_format_once(settings: StorageSettings) -> None:
    # Given a new store; When it is opened
    store = open_object_store(settings)
    # Then it carries this herd's format, and a second open keeps the marker as it is
    assert store.get(FORMAT_KEY) == f"{STORAGE_FORMAT}\n".encode()
    token = store.read_versioned(FORMAT_KEY)
    assert check_format(open_object_store(settings)) == STORAGE_FORMAT
    assert store.read_versioned(FORMAT_KEY) == token
    # And listings do not show it (a `_herd/` key is the store's own)
    assert FORMAT_KEY not in list(store.list(""))


def test_a_newer_format_is_refused_naming_both_versions(settings: StorageSettings) -> None:
    # Given a store a newer herd marked with a higher format
    store = open_object_store(settings)
    store.put(FORMAT_KEY, f"{STORAGE_FORMAT + 1}\n".encode())
    # When this herd opens it, Then it refuses, naming the store and both formats
    with pytest.raises(FormatTooNew) as caught:
        open_object_store(settings)
    message = caught.value.message
    assert f"format {STORAGE_FORMAT + 1}" in message and f"format {STORAGE_FORMAT})" in message
    assert "upgrade herd" in message and "\n" not in message
    # And the marker is left as the newer herd wrote it
    assert store.get(FORMAT_KEY) == f"{STORAGE_FORMAT + 1}\n".encode()


def test_a_marker_that_is_no_number_is_corruption(settings: StorageSettings) -> None:
    store = open_object_store(settings)
    store.put(FORMAT_KEY, b"\x00garbage")
    with pytest.raises(DataCorrupted, match="_herd/format"):
        open_object_store(settings)


def test_cli_refuses_a_newer_store_in_one_line_with_exit_9(settings: StorageSettings, tmp_path: Path) -> None:
    # Given a store with a repo, then marked by a newer herd
    store = open_object_store(settings)
    store.put(FORMAT_KEY, b"99\n")
    before = {key: store.get(key) for key in store.list("")}
    # When the CLI reads or writes it
    for args in (["list-repo"], ["create-repo", "fresh"]):
        proc = subprocess.run([str(HERD), *args], env=_env(settings), cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)
        # Then it exits 9 with one line naming the format, and changes nothing
        assert proc.returncode == 9, proc.stderr
        assert proc.stderr.count("\n") == 1 and "format 99" in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: storage ") and "Traceback" not in proc.stderr
    assert {key: store.get(key) for key in store.list("")} == before


def test_an_older_format_opens(settings: StorageSettings) -> None:
    # A marker of an older (or this) format is read as is: nothing rewrites it
    store = open_object_store(settings)
    store.put(FORMAT_KEY, b"0\n")
    assert check_format(open_object_store(settings)) == 0


def test_several_opens_at_once_agree(settings: StorageSettings) -> None:
    # Many processes' first open at the same moment: the create-only write lets one win
    from concurrent.futures import ThreadPoolExecutor

    def opened(_: Any) -> int:
        return check_format(open_object_store(settings))

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(opened, range(8))) == {STORAGE_FORMAT}
