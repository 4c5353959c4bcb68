"""Bad input through the installed `herd` console script (issue 9): names, paths, put-file -r's
symbolic links and special files, and settings. Each refusal is one `error:` line naming the
culprit (escaped), a non-zero exit, no traceback, and storage exactly as it was, on the local
folder and on moto's S3 server.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from storage.paths import printable
from tests.fixtures.s3 import FAKE_AWS_ENV, fresh_bucket

ROOT = Path(__file__).resolve().parents[2]
HERD = ROOT / ".venv" / "bin" / "herd"


@dataclass
class Backend:
    env: dict[str, str]
    snapshot: Callable[[], dict[str, bytes]]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
    env.update(HERD_RUNTIME="local", **extra)
    return env


def _local_snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock")}


@pytest.fixture(params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "file":
        root = tmp_path / "store"
        return Backend(_env(HERD_STORAGE=f"file://{root}"), lambda: _local_snapshot(root))
    return _s3_backend(request.getfixturevalue("moto_server").url)


@pytest.fixture(scope="module", params=["file", pytest.param("s3", marks=pytest.mark.s3)])
def shared(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Backend:
    """One store per backend for the tests that only get refused: repo 'abc', master holding /ok.
    Each such test compares snapshots, so they cannot hide a change from one another."""
    if request.param == "file":
        root = tmp_path_factory.mktemp("shared") / "store"
        found = Backend(_env(HERD_STORAGE=f"file://{root}"), lambda: _local_snapshot(root))
    else:
        found = _s3_backend(request.getfixturevalue("moto_server").url)
    ok(found.env, "create-repo", "abc")
    ok(found.env, "put-file", "abc", "master", "/ok", input=b"ok")
    return found


def _s3_backend(endpoint: str) -> Backend:
    from storage.s3 import S3ObjectStore

    bucket = fresh_bucket()
    store = S3ObjectStore(bucket, "", endpoint)
    env = _env(HERD_STORAGE=f"s3://{bucket}/herd", AWS_ENDPOINT_URL=endpoint, **FAKE_AWS_ENV)
    return Backend(env, lambda: {key: store.get(key) for key in store.list("")})



def herd(env: dict[str, str], *args: str, input: bytes | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(HERD), *args], env=env, input=input, cwd=cwd,
                          capture_output=True, timeout=120)


def ok(env: dict[str, str], *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    proc = herd(env, *args, input=input)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc


def refused(env: dict[str, str], *args: str, input: bytes | None = None, code: int = 4) -> str:
    """Run a command that must fail: one printable `error:` line, exit `code`, no traceback."""
    proc = herd(env, *args, input=input)
    err = proc.stderr.decode("utf-8")  # strict: no stray bytes reach the terminal either
    assert proc.returncode == code, err
    assert proc.stdout == b""
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert "Traceback" not in err and "\x1b" not in err and "\r" not in err
    return err.strip()


def repos(env: dict[str, str]) -> list[str]:
    return [line.split()[0] for line in ok(env, "list-repo").stdout.decode().splitlines()[1:]]


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["abc\n", "\nabc", "ab\tc", "abc\r", "a" * 64, "abc\x1b[2J", "ａｂｃ"])
def test_a_name_with_anything_around_it_is_refused(shared: Backend, name: str) -> None:
    # Given a store holding repo 'abc'
    before = shared.snapshot()
    # When a repo or branch named like it but with a newline (or other junk) is created
    # Then it is refused, named with the junk escaped
    assert f"invalid repo name '{printable(name)}'" in refused(shared.env, "create-repo", name)
    assert f"invalid branch name '{printable(name)}'" in refused(shared.env, "create-branch", "abc", name)
    # And nothing was made
    assert shared.snapshot() == before


def test_a_branch_with_a_newline_takes_no_write(shared: Backend) -> None:
    before = shared.snapshot()
    assert "invalid" in refused(shared.env, "put-file", "abc", "master\n", "/x", input=b"x")
    assert "invalid" in refused(shared.env, "start-commit", "abc", "master\n")
    assert shared.snapshot() == before
    assert repos(shared.env) == ["abc"]


def test_the_longest_name_works_everywhere(backend: Backend, work: Path) -> None:
    # Given a 63-character repo and branch (the cap); Then every verb reaches them
    name = "n" * 63
    ok(backend.env, "create-repo", name)
    ok(backend.env, "put-file", name, name, "/x", input=b"x")
    assert ok(backend.env, "get-file", name, name, "/x").stdout == b"x"
    assert name in ok(backend.env, "list-branch", name).stdout.decode()
    ok(backend.env, "delete-branch", name, name)


# --- paths ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/a\x1b[31mred", "/a\\x1b[31mred"),
        ("/line\nbreak", "/line\\nbreak"),
        ("/cr\rx", "/cr\\rx"),
        ("/tab\tx", "/tab\\tx"),
        ("/del\x7f", "/del\\x7f"),
        ("/c1\x9b31m", "/c1\\x9b31m"),
        ("/bad\udcff", "/bad\\xff"),  # the byte 0xff in argv: not UTF-8
        ("/rtl\u202etxt.exe", "/rtl\\u202etxt.exe"),
    ],
)
def test_a_path_that_is_not_text_is_refused_escaped(shared: Backend, path: str, shown: str) -> None:
    # Given a repo with one file
    before = shared.snapshot()
    # When a path with a control character or a non-UTF-8 byte is put (argv takes bytes)
    err = refused(shared.env, "put-file", "abc", "master", path, input=b"x")
    # Then it is named with the character escaped, and nothing changed
    assert f"'{shown}'" in err
    assert shared.snapshot() == before
    # And reads refuse it the same way
    assert f"'{shown}'" in refused(shared.env, "get-file", "abc", "master", path)


# --- put-file -r: links, special files, bad local names --------------------------------------


@pytest.fixture
def tree(work: Path) -> Path:
    """tree/{a.txt, sub/b.txt} plus a link to a file outside, a link to a folder outside, a
    dangling link, a FIFO and a socket."""
    (work / "outside").mkdir()
    (work / "outside" / "secret.txt").write_text("secret")
    root = work / "tree"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("a")
    (root / "sub" / "b.txt").write_text("bb")
    (root / "file-link").symlink_to(work / "outside" / "secret.txt")
    (root / "dir-link").symlink_to(work / "outside")
    (root / "dangling").symlink_to(work / "nowhere")
    os.mkfifo(root / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("tree/sock")  # relative: a socket path must fit in 108 bytes
    sock.close()
    return root


def _files(env: dict[str, str], repo: str, glob: str) -> list[str]:
    listing = ok(env, "glob-file", repo, "master", glob).stdout.decode().splitlines()[1:]
    return [line.split()[0] for line in listing if line.split()[1] == "file"]


def test_put_file_r_skips_links_and_special_files_and_says_so(backend: Backend, tree: Path) -> None:
    ok(backend.env, "create-repo", "r")
    # When a folder holding links, a FIFO and a socket is put
    proc = herd(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "tree")
    # Then only its regular files go in (nothing from outside the folder)
    assert proc.returncode == 0, proc.stderr.decode()
    assert _files(backend.env, "r", "/t/**") == ["/t/a.txt", "/t/sub/b.txt"]
    # And each skipped entry is one warning line naming it and why
    warnings = sorted(proc.stderr.decode().splitlines())
    assert warnings == [
        "warning: skipped 'tree/dangling': a symbolic link (--follow-symlinks follows links)",
        "warning: skipped 'tree/dir-link': a symbolic link (--follow-symlinks follows links)",
        "warning: skipped 'tree/fifo': a FIFO (named pipe)",
        "warning: skipped 'tree/file-link': a symbolic link (--follow-symlinks follows links)",
        "warning: skipped 'tree/sock': a socket",
    ]


def test_put_file_r_follow_symlinks_follows_links_to_files_and_folders(backend: Backend, tree: Path) -> None:
    ok(backend.env, "create-repo", "r")
    proc = herd(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "tree", "--follow-symlinks")
    assert proc.returncode == 0, proc.stderr.decode()
    assert _files(backend.env, "r", "/t/**") == [
        "/t/a.txt", "/t/dir-link/secret.txt", "/t/file-link", "/t/sub/b.txt",
    ]
    assert ok(backend.env, "get-file", "r", "master", "/t/file-link").stdout == b"secret"
    # A dangling link and the special files are still skipped, by name
    assert sorted(proc.stderr.decode().splitlines()) == [
        "warning: skipped 'tree/dangling': a dangling symbolic link",
        "warning: skipped 'tree/fifo': a FIFO (named pipe)",
        "warning: skipped 'tree/sock': a socket",
    ]


@pytest.mark.parametrize("make", ["up", "self"])
def test_put_file_r_follow_symlinks_refuses_a_loop(backend: Backend, tree: Path, make: str) -> None:
    ok(backend.env, "create-repo", "r")
    before = backend.snapshot()
    if make == "up":
        (tree / "sub" / "up").symlink_to("..")  # tree/sub/up -> tree: endless descent
        culprit = "tree/sub/up"
    else:
        (tree / "self").symlink_to("self")  # ELOOP
        culprit = "tree/self"
    err = refused(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "tree", "--follow-symlinks")
    assert f"symbolic link '{culprit}' loops" in err
    assert backend.snapshot() == before
    # Without the flag the link is skipped and the rest goes in
    ok(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "tree")


@pytest.mark.parametrize(("name", "shown"), [(b"e\x1b[31m", "e\\x1b[31m"), (b"bad\xff", "bad\\xff"),
                                             (b"nl\nx", "nl\\nx")])
def test_put_file_r_refuses_a_local_name_that_is_not_text(
    backend: Backend, work: Path, name: bytes, shown: str
) -> None:
    # Given a folder with good files and one whose name holds a control character or non-UTF-8
    ok(backend.env, "create-repo", "r")
    before = backend.snapshot()
    (work / "tree" / "deep").mkdir(parents=True)
    (work / "tree" / "a.txt").write_text("a")
    with open(os.path.join(b"tree/deep", name), "wb") as out:
        out.write(b"x")
    # When it is put; Then it is refused naming the local file, escaped, before any upload
    err = refused(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "tree")
    assert f"local file 'tree/deep/{shown}'" in err
    assert backend.snapshot() == before


def test_a_folder_with_only_links_says_what_it_skipped(backend: Backend, work: Path) -> None:
    ok(backend.env, "create-repo", "r")
    (work / "links").mkdir()
    (work / "links" / "l").symlink_to("/etc/hostname")
    err = refused(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "links")
    assert "has no files to put" in err and "'links/l' (a symbolic link" in err


def test_a_folder_deeper_than_a_repo_path_is_refused(backend: Backend, work: Path) -> None:
    # Given a folder nested deeper than a repo path may be (1024 bytes)
    ok(backend.env, "create-repo", "r")
    before = backend.snapshot()
    deep = work.joinpath("deep", *["d" * 10] * 110)
    deep.mkdir(parents=True)
    (deep / "f").write_text("x")
    # Then put-file -r refuses it in one line (never a RecursionError), and nothing is stored
    assert "is deeper than a repo path can be" in refused(backend.env, "put-file", "r", "master", "/t", "-r", "-f", "deep")
    assert backend.snapshot() == before


def test_a_named_pipe_given_with_f_is_streamed(backend: Backend, work: Path) -> None:
    # Given a FIFO named with -f (what `-f <(cmd)` gives); Then its bytes are put, like stdin
    ok(backend.env, "create-repo", "r")
    os.mkfifo(work / "pipe")

    def feed() -> None:
        with open(work / "pipe", "wb") as out:
            out.write(b"piped\n")

    threading.Thread(target=feed, daemon=True).start()
    ok(backend.env, "put-file", "r", "master", "/p", "-f", "pipe")
    assert ok(backend.env, "get-file", "r", "master", "/p").stdout == b"piped\n"


# --- settings -------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("HERD_PARALLELISM", "abc"),
    ("HERD_PARALLELISM", "0"),
    ("HERD_STORAGE", ""),
    ("HERD_STORAGE", "ftp://x/y"),
    ("HERD_S3_ENDPOINT_URL", "localhost:9000"),
    ("HERD_BROKER", "http://localhost:6379"),
    ("HERD_QUEUE", ""),
    ("HERD_RECONCILE_INTERVAL", "nan"),
    ("HERD_BATCH_SECONDS", "0"),
    ("HERD_RESEND_SECONDS", "-1"),
    ("HERD_LOCK_SECONDS", "abc"),
    ("HERD_RUNTIME", "dockr"),
    ("HERD_CONCURRENCY", "0"),
    ("HERD_VISIBILITY_TIMEOUT", "inf"),
    ("HERD_SCRATCH", "relative"),
    ("HERD_WORKER_ID", "a b"),
    ("HERD_LEASE_SECONDS", "0"),
    ("HERD_USER_NETWORK", "maybe"),
    ("HERD_OUTPUT_QUOTA", "-5"),
]


@pytest.mark.parametrize(("variable", "value"), BAD_SETTINGS)
def test_a_bad_setting_stops_put_file_before_any_write(shared: Backend, variable: str, value: str) -> None:
    # Given a repo with one commit
    before = shared.snapshot()
    # When put-file runs with one bad variable (HERD_PARALLELISM=abc used to fail after committing)
    err = refused({**shared.env, variable: value}, "put-file", "abc", "master", "/b", input=b"b")
    # Then one line names the variable and the value, and nothing was written (no commit)
    assert err.startswith(f"error: {variable}: invalid value {value!r}: expected"), err
    assert shared.snapshot() == before


@pytest.mark.parametrize("command", [["list-repo"], ["scheduler"], ["worker"], ["fsck"], ["garbage-collect"]])
def test_every_command_checks_settings_first(tmp_path: Path, command: list[str]) -> None:
    # Given a bad variable; Then even commands that read no file or run services stop at once
    # (a command another part of issue 9 has not added yet is a usage error, also before work)
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'st'}", HERD_LEASE_SECONDS="-3")
    proc = herd(env, *command, cwd=tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode != 0 and "Traceback" not in err
    if "No such command" not in err:
        assert err.splitlines() == ["error: HERD_LEASE_SECONDS: invalid value '-3': expected a number of "
                                    "seconds greater than 0 and at most 604800"]
    assert not (tmp_path / "st").exists()


def test_empty_optional_urls_count_as_unset(backend: Backend, work: Path) -> None:
    # Given HERD_S3_ENDPOINT_URL= and HERD_BROKER= (empty, as `export X=` leaves them)
    env = {**backend.env, "HERD_BROKER": "", "HERD_OUTPUT_QUOTA": ""}
    if backend.env["HERD_STORAGE"].startswith("file:"):
        env["HERD_S3_ENDPOINT_URL"] = ""
    # Then the CLI works as with them unset (in-process jobs, boto3's own endpoint)
    ok(env, "create-repo", "r")
    ok(env, "put-file", "r", "master", "/a", input=b"a")
    assert ok(env, "get-file", "r", "master", "/a").stdout == b"a"


# --- pipeline outputs -----------------------------------------------------------------------


def test_an_output_name_that_is_not_text_fails_the_datum_by_name(tmp_path: Path, work: Path) -> None:
    # Given a pipeline whose code writes /pfs/out/a<ESC>[31mred (local runtime)
    env = _env(HERD_STORAGE=f"file://{tmp_path / 'store'}")
    ok(env, "create-repo", "in")
    ok(env, "put-file", "in", "master", "/x", input=b"x")
    spec = {"pipeline": {"name": "evil"}, "input": {"pfs": {"repo": "in", "glob": "/*"}},
            "transform": {"cmd": ["sh", "-c", "printf x > \"/pfs/out/a$(printf '\\033')[31mred\""]}}
    (work / "p.json").write_text(json.dumps(spec))
    # When it runs; Then the datum fails naming the file, escaped (the job is not wedged by a
    # path storage would refuse), and the output branch gets no such file
    ok(env, "create-pipeline", "-f", "p.json")
    job = json.loads(ok(env, "list-job", "--json").stdout.decode().splitlines()[0])
    assert job["state"] == "JOB_FAILURE", job
    datum = json.loads(ok(env, "list-datum", job["job"]["id"], "--json").stdout.decode().splitlines()[0])
    inspected = ok(env, "inspect-datum", job["job"]["id"], datum["datum"]["id"]).stdout.decode()
    assert "unsafe output '/a\\x1b[31mred'" in inspected and "\x1b" not in inspected
