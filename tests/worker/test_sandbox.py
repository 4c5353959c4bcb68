"""The local runtime as an attacker meets it, through the real `herd` CLI in a subprocess.

Every install lives outside /tmp (the sandbox's /tmp is private, which would hide a store
under it for free): storage and scratch under /var/tmp, which the sandbox shows read-only.
Modes are chosen as in test_process_runtime (tests/worker/sandboxes.py): both namespaces, bwrap and
unshare (one this machine cannot start fails under CI), plus rewrite where the test is about
processes rather than the file system.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.worker.processes import processes_running, unique_sleep, wait_until
from tests.worker.sandboxes import ALL_MODES, NAMESPACES, mode_id, require
from worker.process_runtime import Isolation
from worker.staging import clear_pfs

HERD = Path(sys.executable).parent / "herd"
# Where a hostile datum tries to create files on the host (besides the store and scratch).
HOST_FOLDERS = ["/", "/tmp", "/var/tmp", "/etc", "/root", "/home", "/usr", "/opt", "/srv", "/mnt", "/var", "/run",
                "/dev/shm", str(Path.home())]


@dataclass
class Install:
    root: Path
    mode: Isolation

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def scratch(self) -> Path:
        return self.root / "scratch"

    def env(self) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("HERD_", "AWS_"))}
        return dict(
            keep, HERD_STORAGE=self.store.as_uri(), HERD_SCRATCH=str(self.scratch), HERD_RUNTIME="local",
            HERD_LOCAL_ISOLATION=self.mode.value, HERD_PARALLELISM="1",
        )

    def herd(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run([str(HERD), *args], env=self.env(), input=input, capture_output=True, timeout=180)
        assert done.returncode == 0, (args, done.returncode, done.stderr.decode())
        return done

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """`herd` running in the background (its own session, so a test can clean up after it)."""
        return subprocess.Popen([str(HERD), *args], env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)

    def put(self, repo: str, files: dict[str, bytes]) -> None:
        for path, data in files.items():
            self.herd("put-file", repo, "master", path, "-f", "-", input=data)

    def spec_file(self, name: str, cmd: list[str], repo: str = "in", env: dict[str, str] | None = None) -> str:
        spec = {"pipeline": {"name": name}, "transform": {"cmd": cmd, "env": env or {}},
                "input": {"pfs": {"repo": repo, "glob": "/*"}}}
        path = self.root / f"{name}.json"
        path.write_text(json.dumps(spec))
        return str(path)

    def files(self, repo: str) -> set[str]:
        listing = self.herd("list-file", repo, "master", "/", "--json").stdout.decode()
        return {json.loads(line)["file"]["path"] for line in listing.splitlines() if line.strip()}

    def blobs(self) -> dict[str, str]:
        """sha256 of every stored blob, by file."""
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted((self.store / "blobs").rglob("*")) if p.is_file()}


@pytest.fixture
def install(request: pytest.FixtureRequest) -> Iterator[Install]:
    root = Path(tempfile.mkdtemp(prefix="herd-sandbox-test-", dir="/var/tmp"))
    try:
        yield Install(root, require(request.param))
    finally:
        clear_pfs(root)


def scratch_is_empty(install: Install) -> bool:
    return not install.scratch.exists() or not any(install.scratch.iterdir())


ATTACK = r"""
set +e
# inputs: overwrite, append, chmod, rename, delete, link, truncate, add
for f in /pfs/in/*; do
  echo pwned > "$f"; echo pwned >> "$f"; chmod 777 "$f"; mv "$f" "$f.moved"; rm -f "$f"
  ln "$f" /pfs/out/link; truncate -s 0 "$f"
done
chmod 777 /pfs/in; touch /pfs/in/new
# (a) the host paths behind every mount, as /proc/self/mountinfo tells them
awk '{print $4; print $5}' /proc/self/mountinfo | sort -u | while read -r src; do
  for f in "$src"/in/* "$src"/*; do [ -f "$f" ] && echo pwned > "$f"; done
  touch "$src/$TOKEN"
done
# (b) the storage and scratch folders, by their host paths
ls -A "$STORE" > /pfs/out/store-listing
find "$STORE" "$SCRATCH" -type f | while read -r f; do echo pwned > "$f"; done
mkdir -p "$STORE/blobs"; touch "$STORE/$TOKEN" "$STORE/blobs/$TOKEN" "$SCRATCH/$TOKEN"
# (c) the host's folders, and its root through other processes' /proc entries
for d in $FOLDERS; do touch "$d/$TOKEN"; done
for p in /proc/[0-9]*; do touch "$p/root/tmp/$TOKEN" "$p/cwd/$TOKEN"; done
echo survived > /pfs/out/ok
"""


@pytest.mark.parametrize("install", NAMESPACES, indirect=True, ids=mode_id)
def test_a_hostile_datum_changes_no_stored_byte_and_creates_no_host_file(install: Install) -> None:
    # Given stored files
    install.herd("create-repo", "in")
    install.put("in", {"/f": b"precious\n", "/g": b"also precious\n"})
    before = install.blobs()
    assert before
    token = f"herd-pwned-{uuid.uuid4().hex}"
    # When a pipeline's datums try every way to write outside /pfs/out
    env = {"TOKEN": token, "STORE": str(install.store), "SCRATCH": str(install.scratch), "FOLDERS": " ".join(HOST_FOLDERS)}
    install.herd("create-pipeline", "-f", install.spec_file("attack", ["sh", "-c", ATTACK], env=env))
    # Then both datums ran to their end (outputs of one path merge), saw an empty storage
    # folder, and no stored byte changed
    assert install.herd("get-file", "attack", "master", "/ok").stdout == b"survived\n" * 2
    assert install.herd("get-file", "attack", "master", "/store-listing").stdout == b""
    after = install.blobs()
    assert {path: after.get(path) for path in before} == before
    assert all(Path(path).name == digest for path, digest in after.items())
    assert install.herd("get-file", "in", "master", "/f").stdout == b"precious\n"
    assert install.herd("get-file", "in", "master", "/g").stdout == b"also precious\n"
    # And no file appeared on the host
    made = [str(p) for p in install.root.rglob(f"{token}*")]
    made += [f"{folder}/{token}" for folder in HOST_FOLDERS if os.path.lexists(f"{folder}/{token}")]
    assert made == []
    assert scratch_is_empty(install)


LEFTOVER = """
case "$in" in
  */a) setsid sh -c 'sleep 1.5; echo x > /pfs/out/INJECTED' & ;;
  *) sleep 2 ;;
esac
cp "$in" /pfs/out/
"""


@pytest.mark.parametrize("install", ALL_MODES, indirect=True, ids=mode_id)
def test_a_datums_leftover_process_never_writes_into_a_later_datum(install: Install) -> None:
    # Given three files; the first datum leaves a process that writes to /pfs/out 1.5 s later,
    # while the next datums (one at a time) still run
    install.herd("create-repo", "in")
    install.put("in", {"/a": b"A", "/b": b"B", "/c": b"C"})
    # When the pipeline runs
    install.herd("create-pipeline", "-f", install.spec_file("left", ["sh", "-c", LEFTOVER]))
    # Then no datum's output holds the injected file, and nothing of the datums is left
    assert install.files("left") == {"/a", "/b", "/c"}
    assert scratch_is_empty(install)


# Outputs over 64 KiB on a local store become their blob by a link to their own inode
# (BlobStore.adopt_file): a process left writing to one would change a stored blob under its hash.
STILL_WRITING = r"""
head -c 200000 /dev/zero > /pfs/out/big
exec 3>>/pfs/out/big
(while :; do echo held-open >&3; done) &
(while :; do echo reopened >> /pfs/out/big; done) &
(exec 4>>/pfs/out/big; setsid sh -c 'while :; do echo own-session >&4; done' &) &
sleep 0.2
"""


@pytest.mark.parametrize("install", ALL_MODES, indirect=True, ids=mode_id)
def test_an_output_still_written_by_a_leftover_process_is_stored_as_it_was_hashed(install: Install) -> None:
    # Given a datum leaving three processes that keep appending to its big output (one through a
    # descriptor held open, one in a session of its own)
    install.herd("create-repo", "in")
    install.put("in", {"/a": b"A"})
    # When the pipeline runs and its output is stored
    install.herd("create-pipeline", "-f", install.spec_file("writer", ["sh", "-c", STILL_WRITING]))
    listing = install.herd("list-file", "writer", "master", "/big", "--json").stdout
    size = json.loads(listing)["size_bytes"]
    time.sleep(1.0)  # time enough for a survivor, were there one, to write
    # Then every stored blob still hashes to its name, the output reads back verified at the
    # size committed, and fsck finds nothing wrong
    blobs = install.blobs()
    assert blobs and all(Path(path).name == digest for path, digest in blobs.items())
    data = install.herd("get-file", "writer", "master", "/big").stdout
    assert len(data) == size > 200000 and data.startswith(b"\0" * 200000)
    assert install.herd("fsck").returncode == 0
    assert scratch_is_empty(install)


def sleeping_pipeline(install: Install) -> tuple[subprocess.Popen[bytes], str]:
    """`herd create-pipeline` running a datum that sleeps a minute; returns it and the sleep's token."""
    token = unique_sleep()
    install.herd("create-repo", "in")
    install.put("in", {"/a": b"A"})
    herd = install.start("create-pipeline", "-f", install.spec_file("nap", ["sh", "-c", f"sleep {token}; true"]))
    wait_until(lambda: processes_running(token) != [] or herd.poll() is not None, timeout=60)
    assert herd.poll() is None, herd.communicate()
    return herd, token


@pytest.mark.parametrize("install", ALL_MODES, indirect=True, ids=mode_id)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_of_the_cli_stops_user_code_at_once(install: Install, signum: int) -> None:
    herd, token = sleeping_pipeline(install)
    try:
        # When herd is told to stop
        herd.send_signal(signum)
        # Then within a moment it has exited and no process of the datum remains
        wait_until(lambda: herd.poll() is not None and processes_running(token) == [], timeout=3)
        assert herd.returncode == 130, herd.stderr.read() if herd.stderr else ""
        # And its scratch folders are gone
        assert scratch_is_empty(install)
    finally:
        _kill(herd)


@pytest.mark.parametrize("install", NAMESPACES, indirect=True, ids=mode_id)
def test_sigkill_of_the_cli_leaves_no_orphan(install: Install) -> None:
    herd, token = sleeping_pipeline(install)
    try:
        # When herd is killed outright, Then its sandbox dies with it
        os.kill(herd.pid, signal.SIGKILL)
        wait_until(lambda: herd.poll() is not None and processes_running(token) == [], timeout=3)
    finally:
        _kill(herd)


@pytest.mark.parametrize("install", ALL_MODES, indirect=True, ids=mode_id)
def test_input_named_repo_dash_1_runs(install: Install) -> None:
    # Given an input whose name is not a shell identifier, as in Pachyderm's own tests
    install.herd("create-repo", "repo-1")
    install.put("repo-1", {"/a": b"A"})
    # When a pipeline reads its environment variables (python: dash would drop such names)
    script = "import os; open('/pfs/out/env', 'w').write(os.environ['repo-1'] + ' ' + os.environ['repo-1_COMMIT'])"
    spec = install.spec_file("dash", ["python3", "-c", script], repo="repo-1")
    install.herd("create-pipeline", "-f", spec)
    # Then every datum ran, with the variables set
    path, commit = install.herd("get-file", "dash", "master", "/env").stdout.decode().split()
    assert path.endswith("/repo-1/a") and len(commit) >= 16


@pytest.mark.docker
def test_input_named_repo_dash_1_runs_in_docker(busybox_image: str, tmp_path: Path) -> None:
    # Given the same pipeline on the Docker runtime
    install = Install(tmp_path, Isolation.REWRITE)
    env = dict(install.env(), HERD_RUNTIME="docker", HERD_USER_NETWORK="false")

    def herd(*args: str, input: bytes | None = None) -> bytes:
        done = subprocess.run([str(HERD), *args], env=env, input=input, capture_output=True, timeout=300)
        assert done.returncode == 0, (args, done.stderr.decode())
        return done.stdout

    herd("create-repo", "repo-1")
    herd("put-file", "repo-1", "master", "/a", "-f", "-", input=b"A")
    # When user code copies its own environment (no shell in between to drop names)
    cmd = ["/bin/busybox", "cp", "/proc/self/environ", "/pfs/out/environ"]
    spec = {"pipeline": {"name": "dash"}, "transform": {"image": busybox_image, "cmd": cmd},
            "input": {"pfs": {"repo": "repo-1", "glob": "/*"}}}
    (tmp_path / "dash.json").write_text(json.dumps(spec))
    herd("create-pipeline", "-f", str(tmp_path / "dash.json"))
    # Then the datum succeeded with the variables set
    environ = dict(entry.split("=", 1) for entry in herd("get-file", "dash", "master", "/environ").decode().split("\0") if entry)
    assert environ["repo-1"] == "/pfs/repo-1/a" and len(environ["repo-1_COMMIT"]) >= 16


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
