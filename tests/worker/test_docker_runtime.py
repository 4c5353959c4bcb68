"""DockerRuntime against a real engine: the warm container, limits, failures; what is particular
to it. What every runtime does (/pfs in and out, stdin, env, exit codes, timeouts) is in
test_runtime_contract.py, run over this runtime too.

Images are built locally from the host's static busybox (tests/fixtures/docker.py). Every
container a test starts is labelled with the test's own worker id and removed at teardown.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from storage.errors import EngineUnavailable, HerdError, ImageNotFound, InvalidArgument, UnsafeOutput, UserCodeError
from tests.fixtures.docker import herd_containers
from tests.fixtures.services import wait_until
from tests.worker.written import written
from worker.docker_runner import entry_chunks as _real_entry_chunks
from worker.docker_runtime import DockerRuntime, DockerSession
from worker.runtime import LOG_TAIL_BYTES, RunRequest, UserCode

pytestmark = pytest.mark.docker

TRANSFERS = ("stream", "archive")


@pytest.fixture
def pfs(tmp_path: Path) -> Path:
    """A datum folder: in/a.txt, in/sub dir/b.bin (binary, a space in the name), empty out/."""
    root = tmp_path / "pfs"
    (root / "in" / "sub dir").mkdir(parents=True)
    (root / "in" / "a.txt").write_text("alpha\n")
    (root / "in" / "sub dir" / "b.bin").write_bytes(bytes(range(256)) * 4)
    (root / "out").mkdir()
    return root


def request(pfs: Path, timeout: float | None = 30, **env: str) -> RunRequest:
    return RunRequest(pfs_dir=pfs, env={"PACH_JOB_ID": "job1", "PACH_DATUM_ID": "d1", **env}, timeout=timeout)


def sh(script: str) -> tuple[str, ...]:
    return ("sh", "-c", script)


def test_stdin_env_and_working_dir(open_session, pfs: Path) -> None:
    session = open_session(
        ("sh",), stdin=("echo \"$FOO|$PACH_DATUM_ID|$in\"", "pwd", "printf '%s' \"$TRICKY\" > /pfs/out/tricky"),
        env={"FOO": "from-spec", "PACH_DATUM_ID": "overridden-by-request"}, working_dir="/tmp",
    )
    tricky = "it's \"quoted\"\nsecond line \\ $HOME `x` é"
    result = session.run(request(pfs, **{"in": "/pfs/in/a.txt", "TRICKY": tricky}))
    assert result.stdout == b"from-spec|d1|/pfs/in/a.txt\n/tmp\n"
    assert written(result, pfs)["tricky"].decode() == tricky


def test_a_missing_command_is_127_as_a_shell_says(open_session, pfs: Path) -> None:
    # (exit codes and stderr of every runtime: test_runtime_contract.py)
    missing = open_session(("no-such-program", "x")).run(request(pfs))
    assert missing.exit_code == 127 and b"no-such-program: command not found" in missing.stderr


def test_long_outputs_keep_a_tail_and_large_files_arrive(open_session, pfs: Path) -> None:
    script = "seq 1 40000; seq 1 30000 >&2; head -c 3000000 /dev/urandom > /pfs/out/big; ln -s x /tmp/ignored"
    result = open_session(sh(script)).run(request(pfs))
    assert result.exit_code == 0
    assert len(result.stdout) == LOG_TAIL_BYTES and result.stdout.endswith(b"39999\n40000\n")
    assert len(result.stderr) == LOG_TAIL_BYTES and result.stderr.endswith(b"30000\n")
    assert result.outputs is not None and len(result.outputs["big"]) == 3_000_000  # read in memory, no file


def test_outputs_too_large_for_memory_are_laid_out_on_disk(open_session, pfs: Path) -> None:
    script = "head -c 9000000 /dev/urandom > /pfs/out/big; echo small > /pfs/out/small"
    result = open_session(sh(script)).run(request(pfs))
    assert result.exit_code == 0 and result.outputs is None  # a tar past SPOOL_BYTES is unpacked
    assert (pfs / "out" / "big").stat().st_size == 9_000_000 and (pfs / "out" / "small").read_text() == "small\n"


def test_many_datums_share_one_warm_container(open_session, docker_client, docker_worker_id: str, pfs: Path) -> None:
    script = 'ls /pfs/in; ls -A /pfs/out | wc -l; cat /pfs/in/*.txt > "/pfs/out/$PACH_DATUM_ID"'
    session = open_session(sh(script))
    for i in range(12):
        for old in (pfs / "in").iterdir():
            if old.is_file():
                old.unlink()
        (pfs / "in" / f"f{i}.txt").write_text(f"datum {i}\n")
        result = session.run(request(pfs, PACH_DATUM_ID=f"d{i}"))
        assert result.stdout == f"f{i}.txt\nsub dir\n0\n".encode(), result  # nothing left from before
        assert written(result, pfs) == {f"d{i}": f"datum {i}\n".encode()}
    assert session.containers_started == 1
    assert len(herd_containers(docker_client, docker_worker_id)) == 1


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_links_and_special_files_in_out_are_unsafe(open_session, pfs: Path, kind: str) -> None:
    make = "ln -s /etc/passwd /pfs/out/link" if kind == "symlink" else "mkfifo /pfs/out/link"
    session = open_session(sh(f'echo fine > /pfs/out/ok; [ "$PACH_DATUM_ID" != bad ] || {make}'))
    with pytest.raises(UnsafeOutput) as caught:
        session.run(request(pfs, PACH_DATUM_ID="bad"))
    assert caught.value.path == "/pfs/out/link"
    assert "'/pfs/out/link'" in str(caught.value)
    assert not (pfs / "out" / "link").exists()
    (pfs / "out" / "ok").unlink(missing_ok=True)
    result = session.run(request(pfs))
    assert result.exit_code == 0  # the session goes on
    assert written(result, pfs) == {"ok": b"fine\n"}


def test_missing_image_is_image_not_found(docker_client, docker_worker_id: str) -> None:
    runtime = DockerRuntime(docker_client, worker_id=docker_worker_id)
    image = f"herd-test-missing-{uuid.uuid4().hex[:6]}:latest"
    with pytest.raises(ImageNotFound) as caught:
        runtime.open("pipe", UserCode(image=image, cmd=("true",)))
    assert image in str(caught.value)
    assert not herd_containers(docker_client, docker_worker_id)


def test_least_privilege(open_session, docker_client, pfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-secret")
    monkeypatch.setenv("HERD_STORAGE", "s3://bucket")
    session = open_session(sh("env; cat /proc/self/status | grep ^Cap"), cpu=0.5, memory=256 * 1024 * 1024,
                           runtime_args={"pids_limit": 321})
    attrs = docker_client.containers.get(session.container_id).attrs
    host = attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 321
    assert host["ReadonlyRootfs"] is True and host["Privileged"] is False and host["Init"] is True
    assert host["NetworkMode"] == "none" and host["PidMode"] == "" and host["IpcMode"] == "private"
    assert host["UsernsMode"] == "" and not host["Binds"] and "/tmp" in host["Tmpfs"]
    assert host["NanoCpus"] == 500_000_000 and host["Memory"] == 256 * 1024 * 1024
    assert all(m["Type"] == "volume" for m in attrs["Mounts"]), attrs["Mounts"]
    assert "docker.sock" not in str(attrs)
    assert not [e for e in attrs["Config"]["Env"] or [] if e.startswith(("AWS_", "HERD_"))]
    result = session.run(request(pfs))
    assert b"worker-secret" not in result.stdout and b"HERD_" not in result.stdout
    caps = dict(line.split(b":\t") for line in result.stdout.splitlines() if line.startswith(b"Cap"))
    assert caps[b"CapEff"] == caps[b"CapPrm"] == caps[b"CapBnd"] == b"0000000000000000"


@pytest.mark.parametrize("user", [None, "1000:1000"])
@pytest.mark.parametrize("transfer", TRANSFERS)
def test_user_code_cannot_change_inputs(open_session, pfs: Path, user: str | None, transfer: str) -> None:
    script = (
        "p=/pfs/in/a.txt; (echo x >> $p) 2>/dev/null && echo WROTE; chmod 666 $p 2>/dev/null && echo CHMOD; "
        "rm -f $p 2>/dev/null; [ -e $p ] || echo REMOVED; mv /pfs/in /pfs/moved 2>/dev/null && echo MOVED; "
        "touch /pfs/new 2>/dev/null && echo CREATED; mkdir '/pfs/in/sub dir/d' 2>/dev/null && echo MKDIR; "
        "touch /bin/x 2>/dev/null && echo ROOTFS; id -u; echo ok > /pfs/out/ok"
    )
    result = open_session(sh(script), user=user, transfer=transfer).run(request(pfs))
    expected_uid = b"1000" if user else b"0"
    assert result.stdout == expected_uid + b"\n", result
    assert written(result, pfs) == {"ok": b"ok\n"}
    assert (pfs / "in" / "a.txt").read_text() == "alpha\n"


def test_image_without_a_shell(open_session, noshell_image: str, pfs: Path) -> None:
    session = open_session(("/opt/busybox", "cp", "/pfs/in/a.txt", "/pfs/out/a.txt"), image=noshell_image)
    result = session.run(request(pfs))
    assert result.exit_code == 0, result.stderr
    assert written(result, pfs) == {"a.txt": b"alpha\n"}


def test_close_removes_the_container_and_its_volumes(open_session, docker_client, pfs: Path) -> None:
    session = open_session()
    volumes = [m["Name"] for m in docker_client.containers.get(session.container_id).attrs["Mounts"]]
    assert len(volumes) == 2
    session.close()
    session.close()  # twice is fine
    remaining = {v.name for v in docker_client.volumes.list()}
    assert not remaining & set(volumes)


def test_user_code_killing_the_runner_fails_the_datum_only(open_session, pfs: Path) -> None:
    session = open_session(sh('[ "$PACH_DATUM_ID" != evil ] || { kill -9 -1; sleep 5; }; echo alive'))
    with pytest.raises(UserCodeError, match="stopped during a datum"):
        session.run(request(pfs, PACH_DATUM_ID="evil"))
    result = session.run(request(pfs))  # in a fresh container
    assert result.exit_code == 0 and session.containers_started == 2


def test_a_dead_worker_leaves_no_container(open_session, docker_client, docker_worker_id: str) -> None:
    session = open_session()
    container_id = session.container_id
    for channel in (session._runner, session._stager):
        channel.close()  # as a crashed worker's sockets: the runner reads EOF and exits
    session._runner = session._stager = None
    session.container_id = None

    def gone() -> bool:
        return not docker_client.containers.list(all=True, filters={"id": container_id})

    assert wait_until(gone, timeout=30)


def test_network_stays_on_unless_disabled(docker_client, busybox_image: str) -> None:
    runtime = DockerRuntime(docker_client)
    on = DockerSession(runtime, "p", UserCode(image=busybox_image, cmd=("true",)))._create_args()
    off = DockerSession(runtime, "p", UserCode(image=busybox_image, cmd=("true",), network=False))._create_args()
    assert on["host_config"].get("NetworkMode") in (None, "default")
    assert off["host_config"]["NetworkMode"] == "none"


def test_stage_uid_clash_is_refused(open_session) -> None:
    with pytest.raises(InvalidArgument, match="stage uid"):
        open_session(user="60999")


def test_unreachable_engine_is_engine_unavailable(tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/no-engine.sock"
    runtime = DockerRuntime(docker_host=host)
    with pytest.raises(EngineUnavailable) as caught:
        runtime.open("pipe", UserCode(image="anything:latest", cmd=("true",)))
    assert host in str(caught.value)


def test_busybox_path_is_configurable(docker_client, busybox_image: str, tmp_path: Path) -> None:
    runtime = DockerRuntime(docker_client, busybox_path=tmp_path / "nope", worker_id=f"test-{uuid.uuid4().hex[:8]}")
    with pytest.raises(HerdError, match="nope"):
        runtime.open("pipe", UserCode(image=busybox_image, cmd=("true",), network=False))
    assert os.path.exists("/bin/busybox")


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_inputs_past_the_cpio_limit_go_as_a_tar(open_session, pfs: Path, transfer: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("worker.docker_runner.CPIO_MAX_FILE", 100)  # b.bin (1 KiB) now needs a tar
    result = open_session(sh('cat "/pfs/in/sub dir/b.bin" /pfs/in/a.txt | wc -c'), transfer=transfer).run(request(pfs))
    assert result.stdout.strip() == b"1030"


@pytest.fixture
def plain_pfs(tmp_path: Path) -> Path:
    """A datum of four plainly named entries (staged as `E`): in/, in/sub/, in/sub/b.bin, in/x=1~%,+@."""
    root = tmp_path / "plain"
    (root / "in" / "sub").mkdir(parents=True)
    (root / "in" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 300 + b"\n\0tail")
    (root / "in" / "x=1~%,+@").write_bytes(b"")
    (root / "out").mkdir()
    return root


@pytest.mark.parametrize("user", [None, "1000:1000"])
def test_a_few_plainly_named_inputs_are_staged_exactly_and_read_only(
    open_session, plain_pfs: Path, user: str | None, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a datum of four plain entries, staged by the stager's own mkdir and dd (no cpio)
    import worker.docker_runner as runner

    staged = []
    monkeypatch.setattr(runner, "entry_chunks",
                        lambda pfs, entries: staged.append(entries) or _real_entry_chunks(pfs, entries))
    script = (
        "stat -c '%a %u %n' /pfs/in /pfs/in/sub /pfs/in/sub/b.bin '/pfs/in/x=1~%,+@'; "
        "cp /pfs/in/sub/b.bin /pfs/out/b.bin; p=/pfs/in/sub/b.bin; (echo x >> $p) 2>/dev/null && echo WROTE; "
        "chmod 666 $p 2>/dev/null && echo CHMOD; rm -f $p 2>/dev/null; [ -e $p ] || echo REMOVED; "
        "touch /pfs/in/new 2>/dev/null && echo CREATED; wc -c < '/pfs/in/x=1~%,+@'"
    )
    session = open_session(sh(script), user=user)
    # When it runs twice in the warm container
    results = [session.run(request(plain_pfs)) for _ in range(2)]
    # Then both saw every byte, files 0444 and folders 0755 of the stage uid, none of it writable
    uid = session.runtime.stage_uid
    assert len(staged) == 2
    for result in results:
        assert result.exit_code == 0, result
        assert result.stdout.decode().splitlines() == [
            f"755 {uid} /pfs/in", f"755 {uid} /pfs/in/sub", f"444 {uid} /pfs/in/sub/b.bin",
            f"444 {uid} /pfs/in/x=1~%,+@", "0",
        ]
    b_bin = (plain_pfs / "in" / "sub" / "b.bin").read_bytes()
    assert all(written(result, plain_pfs) == {"b.bin": b_bin} for result in results)


def test_each_datum_sees_only_its_own_inputs_though_folders_are_kept(
    open_session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given datums of one session: input folders left empty after a datum are kept for the
    # next one that has the same input, and must hold only its files (as a union or a cross
    # with an empty side gives: an input present in one datum, absent in the next)
    import worker.docker_runner as runner

    staged = []
    monkeypatch.setattr(runner, "entry_chunks",
                        lambda pfs, entries: staged.append(entries) or _real_entry_chunks(pfs, entries))
    session = open_session("cd /pfs && find . | sort")
    datums = [
        {"a/x": b"1", "b/y": b"2"},
        {"a/z": b"3"},
        {"a/.h": b"4", "a/w": b"5"},  # a dot name: sent as a cpio
        {"c/q": b"6"},
        {"c/q": b"7", "a/x": b"8"},
    ]
    seen = []
    for number, files in enumerate(datums):
        root = tmp_path / str(number)
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        (root / "out").mkdir()
        result = session.run(request(root))
        assert result.exit_code == 0, result
        seen.append(result.stdout.decode().split())
    # Then each datum saw exactly its own entries, and all but the cpio one went as `E`
    assert seen == [
        [".", "./a", "./a/x", "./b", "./b/y", "./out"],
        [".", "./a", "./a/z", "./out"],
        [".", "./a", "./a/.h", "./a/w", "./out"],
        [".", "./c", "./c/q", "./out"],
        [".", "./a", "./a/x", "./c", "./c/q", "./out"],
    ]
    assert len(staged) == 4


def test_a_failed_stage_replaces_the_container(
    open_session, plain_pfs: Path, docker_client, docker_worker_id: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a stage that fails halfway through its payload (a file in a folder never made),
    # followed by bytes that would read as a request
    import worker.docker_runner as runner

    session = open_session("cat /pfs/in/sub/b.bin | wc -c")
    assert session.run(request(plain_pfs)).stdout.strip() == b"76806"
    first = session.container_id
    monkeypatch.setattr(runner, "entry_chunks", lambda pfs, entries: iter([b"f 3 in/none/x\n", b"abcC\nC\n"]))
    # When that datum runs, Then its error names the path, and the stream's container is gone
    with pytest.raises(HerdError, match="in/none/x"):
        session.run(request(plain_pfs))
    assert session.container_id is None
    assert wait_until(lambda: not herd_containers(docker_client, docker_worker_id), timeout=30)
    # And the next datum runs in a new container, with its inputs whole
    monkeypatch.setattr(runner, "entry_chunks", _real_entry_chunks)
    assert session.run(request(plain_pfs)).stdout.strip() == b"76806"
    assert session.container_id not in (None, first)


def test_unknown_user_names_the_user(open_session) -> None:
    with pytest.raises(UserCodeError, match="nobody-here"):
        open_session(user="nobody-here")


@pytest.mark.parametrize("transfer", TRANSFERS)
def test_env_names_a_shell_cannot_export_reach_user_code(open_session, pfs: Path, transfer: str) -> None:
    # Given input names like Pachyderm's own tests use, in the request and in the transform env
    session = open_session(("env",), transfer=transfer, env={"spec-var": "s p\nec", "PLAIN": "p"})
    # When user code reads its environment
    result = session.run(request(pfs, **{"my-input": "/pfs/my-input/x", "my-input_COMMIT": "c1"}))
    # Then every variable is set, exactly
    assert result.exit_code == 0, result.stderr
    assert b"my-input=/pfs/my-input/x\n" in result.stdout and b"my-input_COMMIT=c1\n" in result.stdout
    assert b"spec-var=s p\nec\n" in result.stdout and b"PLAIN=p\n" in result.stdout and b"PACH_JOB_ID=job1\n" in result.stdout


class _StubApi:
    """inspect_image always says 'no such image'."""

    def inspect_image(self, image: str) -> None:
        import docker.errors

        raise docker.errors.ImageNotFound(f"No such image: {image}")


class _StubImages:
    def __init__(self, error: Exception | None = None) -> None:
        self.pulls: list[tuple[str, str]] = []
        self.error = error

    def pull(self, repository: str, tag: str) -> None:
        self.pulls.append((repository, tag))
        if self.error is not None:
            raise self.error


class _StubClient:
    def __init__(self, error: Exception | None = None) -> None:
        self.api = _StubApi()
        self.images = _StubImages(error)


def test_a_missing_image_is_pulled_once_per_runtime() -> None:
    client = _StubClient()
    runtime = DockerRuntime(client)
    for _ in range(3):
        runtime.ensure_image("registry.example:5000/team/tool:1.2")
    assert client.images.pulls == [("registry.example:5000/team/tool", "1.2")]


def test_an_image_that_cannot_be_pulled_is_image_not_found() -> None:
    import docker.errors

    runtime = DockerRuntime(_StubClient(docker.errors.NotFound("manifest for team/tool:9 not found")))
    with pytest.raises(ImageNotFound) as caught:
        runtime.ensure_image("team/tool:9")
    assert "team/tool:9" in str(caught.value) and "manifest" in str(caught.value)


def test_unreadable_output_fails_the_datum_not_the_session(open_session, pfs: Path) -> None:
    script = ('[ "$PACH_DATUM_ID" != bad ] || { echo s > /pfs/out/secret; chmod 000 /pfs/out/secret; '
              'mkdir /pfs/out/locked; chmod 000 /pfs/out/locked; }; echo fine > /pfs/out/ok')
    session = open_session(sh(script), user="1000:1000")
    with pytest.raises(UserCodeError, match="cannot archive /pfs/out"):
        session.run(request(pfs, PACH_DATUM_ID="bad"))
    for leftover in (pfs / "out").iterdir():
        leftover.unlink()
    result = session.run(request(pfs))
    assert result.exit_code == 0 and written(result, pfs) == {"ok": b"fine\n"}
    assert session.containers_started == 1
