"""DockerRuntime: each pipeline's transform runs in its own image, in one warm container per session.

The container is created at `open` with least privilege (no capabilities, no-new-privileges,
pids limit, read-only root with a small /tmp tmpfs, `--init`, no host namespaces, no socket, no
bind mount, no worker environment) and two anonymous volumes: `/.herd` (busybox + the runner
scripts of `worker.docker_runner`, copied in with put_archive before start) and `/pfs`.

Nothing of the worker's filesystem is mounted, so a worker that itself runs in a container
beside the engine works unchanged. Per datum, files move over two hijacked Docker streams
(`transfer="stream"`, no engine call per datum): the inputs tar to the stager, the request to
the runner, the outputs tar back. `transfer="archive"` is the simple fallback: put_archive of
the inputs, exec_run of the datum (about 4 engine calls, ~200 ms).

Docker's exceptions become herd errors in `DockerRuntime.engine_errors` only; `docker` is imported nowhere else.
Faults of user code: the runner reports the memory cgroup's OOM kills (RunResult.oom_killed) and
refused forks (in the datum's stderr); the output quota is checked on the outputs tar's headers
as it streams in (OutputQuotaExceeded, the container replaced); the engine not answering is
EngineUnavailable (an outage, not the datum's fault); close() from another thread (stop-job,
the worker stopping) ends the running datum's user code with its container (RunCancelled).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount
from docker.utils import parse_repository_tag

from storage.errors import (
    EngineUnavailable,
    HerdError,
    ImageNotFound,
    InvalidArgument,
    OutputQuotaExceeded,
    UserCodeError,
)
from worker import docker_runner as runner
from worker.docker_logs import LivePoller
from worker.docker_wire import (
    Answer,
    Channel,
    ChannelClosed,
    ChannelTimeout,
    outputs_in_memory,
    read_answer,
    unpack_outputs,
)
from worker.process_io import RunCancelled
from worker.runtime import LogSink, RunRequest, RunResult, UserCode
from worker.secrets import secret_tar

log = logging.getLogger(__name__)

SPOOL_BYTES = 8 * 1024 * 1024  # tars below this stay in memory
LABEL = "herd.session"


class DockerRuntime:
    """Runtime running each transform in its spec's image, one warm container per session."""

    name = "docker"

    def __init__(
        self,
        client: Any = None,
        *,
        docker_host: str | None = None,
        busybox_path: str | Path = "/bin/busybox",
        transfer: str = "stream",
        stage_uid: int = 60999,
        pids_limit: int = 1024,
        tmp_size: str = "256m",
        worker_id: str | None = None,
        output_quota: int | None = None,
        start_timeout: float = 60.0,
        stage_timeout: float = 600.0,
        kill_grace: float = 30.0,
        log_poll_seconds: float = 0.5,
    ) -> None:
        if transfer not in ("stream", "archive"):
            raise InvalidArgument(f"unknown docker transfer '{transfer}'; choose 'stream' or 'archive'")
        self._client = client
        self.where = f"the Docker engine at {docker_host}" if docker_host else "the Docker engine (DOCKER_HOST)"
        self._docker_host = docker_host
        self.busybox_path = Path(busybox_path)
        self.transfer = transfer
        self.stage_uid = stage_uid
        self.pids_limit = pids_limit
        self.tmp_size = tmp_size
        self.log_poll_seconds = log_poll_seconds  # live logs: how often a running datum's output is read
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"  # the herd.worker label
        self.output_quota = output_quota
        self.start_timeout = start_timeout
        self.stage_timeout = stage_timeout
        self.kill_grace = kill_grace
        self._images: set[str] = set()
        self._lock = threading.Lock()
        self._tools: bytes | None = None

    @property
    def stage_user(self) -> str:
        """The uid:gid owning /pfs and the inputs in every container (never user code's)."""
        return f"{self.stage_uid}:{self.stage_uid}"

    @property
    def client(self) -> Any:
        """The docker SDK client, connected on first use (DOCKER_HOST is read by the SDK)."""
        if self._client is None:
            with self.engine_errors("connect"):
                host = self._docker_host
                self._client = docker.DockerClient(base_url=host) if host else docker.from_env()
        return self._client

    def open(self, pipeline: str, transform: UserCode) -> DockerSession:
        """Pull the image if this worker lacks it, then start the session's warm container."""
        self.ensure_image(transform.image)
        session = DockerSession(self, pipeline, transform)
        session.start()
        return session

    def ensure_image(self, image: str) -> None:
        """Make `image` present on the engine, pulling it at most once per runtime."""
        with self._lock:
            if image in self._images:
                return
            with self.engine_errors("inspect image", image):
                try:
                    self.client.api.inspect_image(image)
                except docker.errors.ImageNotFound:
                    self._pull(image)
            self._images.add(image)

    def image_id(self, image: str) -> str:
        """The id (`sha256:...`) of what `image` names on this engine now, pulled when missing: a job
        records it once (worker/image_digest.py) and every datum of the job runs that id."""
        self.ensure_image(image)
        with self.engine_errors("inspect image", image):
            return str(self.client.images.get(image).id)

    def has_image(self, image_id: str) -> bool:
        """Whether this engine holds the image with this id (a moved tag keeps the old id's image)."""
        with self.engine_errors("inspect image"):
            try:
                self.client.api.inspect_image(image_id)
            except docker.errors.ImageNotFound:
                return False
        return True

    def _pull(self, image: str) -> None:
        """Pull `image` (its tag, or latest); any refusal means the image cannot be had."""
        repository, tag = parse_repository_tag(image)
        log.info("pulling image %s", image)
        try:
            self.client.images.pull(repository, tag=tag or "latest")
        except docker.errors.APIError as exc:  # NotFound, denied, no registry: all mean "no image"
            raise ImageNotFound(image, f"cannot be pulled: {_explain(exc)}") from None

    def tools(self) -> bytes:
        """The /.herd tar (busybox + scripts), read once."""
        if self._tools is None:
            try:
                self._tools = runner.tools_tar(self.busybox_path, self.stage_uid)
            except OSError as exc:
                raise HerdError(f"cannot read busybox at '{self.busybox_path}': {exc.strerror}") from None
        return self._tools

    @contextlib.contextmanager
    def engine_errors(self, action: str, image: str | None = None) -> Iterator[None]:
        """Translate docker SDK / requests exceptions into herd errors naming the image or engine.

        With `image`, the action depends on the spec (its image, user, limits): the engine's
        refusal is the user's to fix (UserCodeError). Without, it is on herd's own container
        or the engine itself: a refusal there means the engine misbehaves (EngineUnavailable),
        as does an engine that does not answer at all; neither ever burns a datum's try.
        """
        try:
            yield
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(image or "?", _explain(exc)) from None
        except docker.errors.APIError as exc:
            if image:
                raise UserCodeError(f"docker could not {action} for image '{image}': {_explain(exc)}") from None
            raise EngineUnavailable(f"{self.where} failed to {action}: {_explain(exc)}") from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException, ConnectionError) as exc:
            raise EngineUnavailable(f"{self.where} is unreachable ({action}): {exc}") from None

    def engine_answers(self) -> bool:
        """Whether the engine answers a ping now (after a stream broke: the engine or the container?)."""
        try:
            return bool(self.client.ping())
        except (HerdError, requests.exceptions.RequestException, docker.errors.DockerException, OSError):
            return False


class DockerSession:
    """One pipeline's warm container; runs one datum at a time."""

    # A datum's inputs up to this many bytes come in the request (RunRequest.inputs), read in
    # memory: no file, folder or inode on the worker for bytes it only sends on.
    inputs_in_memory = SPOOL_BYTES

    def __init__(self, runtime: DockerRuntime, pipeline: str, transform: UserCode) -> None:
        self.runtime = runtime
        self.pipeline = pipeline
        self.transform = transform
        self.session_id = uuid.uuid4().hex[:12]
        self.container_id: str | None = None
        self.containers_started = 0
        self._script = runner.session_script(transform)
        self._stdin = runner.stdin_bytes(transform)
        self._runner: Channel | None = None
        self._stager: Channel | None = None
        self._seq = 0
        self._running: int | None = None  # the thread running a datum now
        self._logs = LivePoller(self._read_output, runtime.log_poll_seconds)
        self._cancelled = False  # close() came from another thread during that datum

    def start(self) -> None:
        """Create, fill and start the container, then check both loops answer."""
        rt, image = self.runtime, self.transform.image
        with rt.engine_errors("create the container", image):
            self.container_id = rt.client.api.create_container(**self._create_args())["Id"]
        try:
            self._fill_and_start()
            self._handshake()
        except BaseException:
            self.close()
            raise
        self.containers_started += 1

    def _create_args(self) -> dict[str, Any]:
        """create_container's arguments: least privilege, two anonymous volumes, our entrypoint."""
        rt, t = self.runtime, self.transform
        host_config = rt.client.api.create_host_config(
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=rt.pids_limit, privileged=False,
            read_only=True, tmpfs={"/tmp": f"rw,nosuid,nodev,size={rt.tmp_size}"}, init=True, ipc_mode="private",
            network_mode=None if t.network else "none", auto_remove=True, log_config=LogConfig(type="none"),
            mounts=[Mount(runner.HERD_DIR, None, type="volume"), Mount("/pfs", None, type="volume"),
                    *(Mount(m.path, None, type="volume") for m in t.secret_mounts)],  # transform.secrets
            nano_cpus=int(t.cpu * 1e9) if t.cpu else None, mem_limit=t.memory or None,
        )
        # stdin_open + attached (detach=False) sets StdinOnce: when the worker dies the runner
        # reads EOF and exits, and auto_remove deletes the container with its volumes.
        return dict(
            image=t.image, entrypoint=[runner.BUSYBOX, "sh", runner.RUNNER], command=[], user=t.user or "",
            stdin_open=True, detach=False, host_config=host_config,
            name=f"herd-{self.pipeline}-{self.session_id}-{self.containers_started + 1}",
            labels={LABEL: self.session_id, "herd.pipeline": self.pipeline, "herd.worker": rt.worker_id},
        )

    def _fill_and_start(self) -> None:
        """Copy the tools and /pfs skeleton in, attach the runner's stdin/stdout, start, exec the stager.

        Only `start` depends on the spec (its user, limits); the rest is herd's own container."""
        api, rt, cid = self.runtime.client.api, self.runtime, self.container_id
        tools = rt.tools()
        with rt.engine_errors("fill herd's container"):
            api.put_archive(cid, runner.HERD_DIR, tools)
            api.put_archive(cid, "/pfs", runner.pfs_tar(rt.stage_uid))
            for mount in self.transform.secret_mounts:
                api.put_archive(cid, mount.path, secret_tar(mount, rt.stage_uid))
            attach = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            self._runner = Channel(_raw(api.attach_socket(cid, params=attach)), "runner")
        with rt.engine_errors("start the container", self.transform.image):
            api.start(cid)
        if rt.transfer == "stream":
            command = [runner.BUSYBOX, "sh", runner.STAGER]
            with rt.engine_errors("start herd's stager in its container"):
                exec_id = api.exec_create(cid, command, stdin=True, user=rt.stage_user)["Id"]
                self._stager = Channel(_raw(api.exec_start(exec_id, socket=True)), "stager")

    def _handshake(self) -> None:
        """The loops answer READY; inputs can be read-only only if user code is not the stage uid."""
        deadline = time.monotonic() + self.runtime.start_timeout
        payload = self._script + self._stdin
        runner_uid, _ = self._ready(self._runner, f"P {len(self._script)} {len(self._stdin)}\n", payload, deadline)
        if runner_uid == self.runtime.stage_uid:
            raise InvalidArgument(
                f"user code of pipeline '{self.pipeline}' runs as uid {runner_uid}, herd's stage uid: "
                "its inputs could not be read-only; choose another transform.user (or stage_uid)"
            )
        if self._stager is not None and not self._ready(self._stager, "P\n", b"", deadline)[1]:
            raise HerdError(f"the stager cannot write /pfs in the container of pipeline '{self.pipeline}'")

    def _ready(self, channel: Channel | None, request: str, payload: bytes, deadline: float) -> tuple[int, int]:
        """Send a loop its `P` request; returns the (uid, flag) of its READY."""
        assert channel is not None
        try:
            channel.send(request, payload)
            uid, flag = channel.fields(deadline, "READY", 2)
        except (ChannelClosed, ChannelTimeout) as exc:
            raise UserCodeError(
                f"herd's runner did not start in image '{self.transform.image}' for pipeline "
                f"'{self.pipeline}': {channel.errors() or exc}"
            ) from None
        return uid, flag

    def run(self, request: RunRequest) -> RunResult:
        """Run one datum: inputs in, the user cmd, outputs back (in memory, or into `<pfs_dir>/out`).

        Raises:
            OutputQuotaExceeded: /pfs/out went past the runtime's output quota; nothing of it
                is unpacked, and the container (with the volume user code filled) is replaced.
            UserCodeError: user code broke the container or its outputs; EngineUnavailable: the
                engine stopped answering (not the datum's fault).
        """
        if self.container_id is None:
            self.start()  # the previous container died with its datum
        pfs_dir = Path(request.pfs_dir)
        self._seq += 1
        self._running, self._cancelled = threading.get_ident(), False
        try:
            return self._run(pfs_dir, request)
        finally:
            self._running = None

    def _run(self, pfs_dir: Path, request: RunRequest) -> RunResult:
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as outputs:
            started = time.monotonic()
            try:
                with self._live_output(request.sink):
                    if self.runtime.transfer == "stream":
                        answer = self._run_stream(pfs_dir, request, outputs)
                    else:
                        answer = self._run_archive(pfs_dir, request, outputs)
            except OutputQuotaExceeded:
                self.close()  # the runner is mid-tar: stop reading, drop the filled volume
                raise
            except _Died as exc:
                if not exc.oom_killed:
                    raise
                duration = time.monotonic() - started
                return RunResult(
                    exit_code=137, stdout=b"", stderr=str(exc).encode(), duration=duration, oom_killed=True,
                )
            duration = time.monotonic() - started
            files = self._collect(answer, outputs, pfs_dir)
        return RunResult(
            exit_code=answer.exit_code, stdout=answer.stdout, stderr=answer.stderr, duration=duration,
            timed_out=answer.timed_out, outputs=files,
            # a child killed for memory that user code survived (exit 0) is its own business
            oom_killed=answer.oom_killed and answer.exit_code != 0,
        )

    @contextlib.contextmanager
    def _live_output(self, sink: LogSink | None) -> Iterator[None]:
        """While a datum runs, hand what user code printed so far to `sink`: every
        `log_poll_seconds` (HERD_LOG_FLUSH_SECONDS) the session's poller (worker/docker_logs.py)
        reads the runner's output files past what it read. The rest arrives with the answer's
        tails (the sink's `catch_up`). A datum shorter than one poll costs no engine call."""
        if sink is None or self.container_id is None:
            yield
            return
        with self._logs.watching(sink):
            yield

    def _read_output(self, stdout_from: int, stderr_from: int) -> tuple[bytes | None, bytes | None] | None:
        """The runner's output files from these 1-based offsets, read by an exec as the stage
        uid (which the runner's `kill -1` spares); None when the engine did not answer."""
        api, cid = self.runtime.client.api, self.container_id
        if cid is None:
            return None
        script = f'{runner.BUSYBOX} tail -c "+$1" {runner.HERD_DIR}/w/o; {runner.BUSYBOX} tail -c "+$2" {runner.HERD_DIR}/w/e >&2'
        argv = [runner.BUSYBOX, "sh", "-c", script, "sh", str(stdout_from), str(stderr_from)]
        try:
            exec_id = api.exec_create(cid, argv, user=self.runtime.stage_user)["Id"]
            out, err = api.exec_start(exec_id, demux=True)
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
            log.debug("cannot read the live output of pipeline '%s': %s", self.pipeline, exc)
            return None  # the container ended, or the engine is busy: the answer's tails follow
        return out, err

    def _run_stream(self, pfs_dir: Path, request: RunRequest, outputs: IO[bytes]) -> Answer:
        """The fast path, no engine call: inputs to the stager and the request to the runner go
        out together (the runner waits for the stager's word on a FIFO), then the answers."""
        assert self._runner is not None and self._stager is not None
        timeout, seq = request.timeout, self._seq
        try:
            self._send_inputs(_inputs(pfs_dir, request), seq)
            self._runner.send(f"R {seq} {_seconds(timeout)} {runner.env_line(request.env)}\n")
        except (ChannelClosed, ChannelTimeout) as exc:
            raise self._died(str(exc)) from None
        except BaseException:
            self.close()  # half a request was sent: the streams are out of step
            raise
        self._check_staged(seq)
        deadline = None if timeout is None else time.monotonic() + timeout + self.runtime.kill_grace
        try:
            answer = read_answer(self._runner, deadline, outputs, self.runtime.output_quota)
            if answer.seq != seq:
                raise ChannelClosed(f"runner answered datum {answer.seq}, not {seq}")
        except ChannelTimeout:
            self.close()  # the runner did not even kill the datum: start afresh next time
            return Answer(seq, 137, True)
        except ChannelClosed as exc:
            raise self._died(str(exc)) from None
        try:
            self._stager.send("C\n")  # delete the inputs while we unpack the outputs
        except ChannelClosed:
            self.close()  # this datum is done; the next one gets a new container
        return answer

    def _send_inputs(self, inputs: runner.InputTree, seq: int) -> None:
        """The inputs as entries when they are a few plain names, else as a cpio stream (a tar
        past 4 GiB files, whose length goes first)."""
        assert self._stager is not None
        entries = runner.plain_entries(inputs)
        if entries is not None:
            names = " ".join(rel for rel, kind, _ in entries if kind == "dir" and "/" not in rel)
            self._stager.send(f"E {len(entries)} {seq} {names}\n", runner.entry_chunks(inputs, entries))
            return
        if not runner.needs_tar(inputs):
            self._stager.send(f"D {seq}\n", runner.cpio_chunks(inputs, self.runtime.stage_uid))
            return
        with tempfile.TemporaryFile() as tar:
            runner.write_inputs_tar(inputs, tar, uid=self.runtime.stage_uid)
            size, _ = tar.seek(0, 2), tar.seek(0)
            self._stager.send(f"T {size} {seq}\n", iter(lambda: tar.read(1 << 20), b""))

    def _check_staged(self, seq: int) -> None:
        """The stager's answer; on failure the runner skipped the datum (it answers `S`)."""
        assert self._stager is not None and self._runner is not None
        deadline = time.monotonic() + self.runtime.stage_timeout
        try:
            status, size = self._stager.fields(deadline, "K", 2)
            error = self._stager.read_exact(min(size, 65536), deadline).decode(errors="replace")
            self._stager.copy_to(size - min(size, 65536), None, deadline)
            if status != 0:
                self._runner.fields(deadline, "S", 1)
        except (ChannelClosed, ChannelTimeout) as exc:
            raise self._died(str(exc) or "the stager did not answer") from None
        if status != 0:
            self.close()  # the stager stopped mid-payload: what it reads next is not a request
            raise HerdError(f"cannot stage the inputs of pipeline '{self.pipeline}' in its container: {error}")

    def _run_archive(self, pfs_dir: Path, request: RunRequest, outputs: IO[bytes]) -> Answer:
        """The fallback: exec a clear, put_archive the inputs, exec the runner once."""
        api, rt, cid = self.runtime.client.api, self.runtime, self.container_id
        argv = [runner.BUSYBOX, "sh", runner.RUNNER, "once", _seconds(request.timeout), runner.env_line(request.env)]
        try:
            with rt.engine_errors(f"run a datum of pipeline '{self.pipeline}' in herd's container"):
                clear = [runner.BUSYBOX, "sh", runner.STAGER, "clear"]
                api.exec_start(api.exec_create(cid, clear, user=rt.stage_user)["Id"])
                with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as tar:
                    runner.write_inputs_tar(_inputs(pfs_dir, request), tar, uid=rt.stage_uid)
                    tar.seek(0)
                    api.put_archive(cid, "/pfs", tar)
                exec_id = api.exec_create(cid, argv, user=self.transform.user or "")["Id"]
                channel = Channel(_raw(api.exec_start(exec_id, socket=True)), "runner (exec)")
        except EngineUnavailable as exc:
            if self._container_gone():
                raise self._died(str(exc)) from None  # user code ended the container, not the engine
            raise
        try:
            return read_answer(channel, None, outputs, rt.output_quota)
        except (ChannelClosed, ChannelTimeout) as exc:
            raise self._died(f"{exc} {channel.errors()}") from None
        finally:
            channel.close()

    def _collect(self, answer: Answer, outputs: IO[bytes], pfs_dir: Path) -> dict[str, bytes] | None:
        """Check the runner could archive /pfs/out; then its files, read in memory while the tar
        is small (no file, folder or inode per output), else unpacked into `<pfs_dir>/out`."""
        if answer.tar_status != 0:
            raise UserCodeError(f"cannot archive /pfs/out of pipeline '{self.pipeline}': {answer.tar_error.strip()}")
        files = outputs_in_memory(outputs, self.runtime.output_quota, SPOOL_BYTES)
        if files is None:  # the spool is left rewound
            unpack_outputs(outputs, pfs_dir, self.runtime.output_quota)
        return files

    def _died(self, detail: str) -> UserCodeError | EngineUnavailable:
        """The container or a loop vanished mid-datum: forget it (the next datum starts another).

        The engine itself gone is an outage (EngineUnavailable); the container killed by the
        memory cgroup is a `_Died` marked oom_killed, which `run` turns into its RunResult.
        Raises RunCancelled instead when another thread closed the session on purpose."""
        errors = " ".join(c.errors() for c in (self._runner, self._stager) if c is not None and c.errors())
        if self._cancelled:
            self.close()
            raise RunCancelled(f"pipeline '{self.pipeline}': the session was closed while a datum ran")
        oom_killed = self._oom_killed()
        self.close()
        if not self.runtime.engine_answers():
            return EngineUnavailable(f"{self.runtime.where} stopped answering during a datum: {errors or detail}")
        if oom_killed:
            return _Died(
                f"the container of pipeline '{self.pipeline}' was killed: out of memory "
                f"(resource_limits.memory = {self.transform.memory})", oom_killed=True,
            )
        return _Died(
            f"the container of pipeline '{self.pipeline}' (image '{self.transform.image}') stopped during a "
            f"datum (killed by user code?): {errors or detail}"
        )

    def _oom_killed(self) -> bool:
        """Whether the engine says our container was killed for memory (if it still knows it)."""
        try:
            state = self.runtime.client.api.inspect_container(self.container_id)["State"]
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError, KeyError, TypeError):
            return False
        return bool(state.get("OOMKilled"))

    def _container_gone(self) -> bool:
        """Whether our container has stopped or been removed (the engine answering that much)."""
        try:
            return not self.runtime.client.api.inspect_container(self.container_id)["State"]["Running"]
        except docker.errors.NotFound:
            return True
        except (requests.exceptions.RequestException, docker.errors.DockerException, OSError, KeyError, TypeError):
            return False

    def close(self) -> None:
        """Close the streams, then remove the container with its volumes.

        From another thread while a datum runs (the worker stopping, stop-job): user code ends
        now with its container, and `run` raises RunCancelled (the datum was not judged)."""
        if self._running is not None and self._running != threading.get_ident():
            self._cancelled = True
        # Streams first: an engine still copying output we stopped reading (a quota hit) holds
        # the container's kill until its attach stream is gone.
        for channel in (self._runner, self._stager):
            if channel is not None:
                channel.close()
        self._runner = self._stager = None
        self._logs.close()
        if self.container_id is not None:
            remove_container(self.runtime, self.container_id)
            self.container_id = None


class _Died(UserCodeError):
    """User code ended its container mid-datum; `oom_killed`: the memory cgroup did."""

    def __init__(self, message: str, *, oom_killed: bool = False) -> None:
        super().__init__(message)
        self.oom_killed = oom_killed


def remove_container(runtime: DockerRuntime, container_id: str, wait: float = 10.0) -> None:
    """Force-remove a container and its anonymous volumes, and return once it is gone."""
    api = runtime.client.api
    try:
        api.remove_container(container_id, force=True, v=True)
        return
    except docker.errors.NotFound:
        return
    except docker.errors.APIError as exc:
        if exc.status_code != 409:  # 409: auto_remove is already removing it; wait for that
            log.warning("cannot remove container %s: %s", container_id[:12], _explain(exc))
            return
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        log.warning("cannot remove container %s: %s unreachable: %s", container_id[:12], runtime.where, exc)
        return
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            api.inspect_container(container_id)
        except docker.errors.NotFound:
            return
        except (docker.errors.APIError, requests.exceptions.ConnectionError):
            return
        time.sleep(0.05)


def _raw(sock: Any) -> Any:
    """The plain socket under docker's hijacked-response wrapper (unix: a SocketIO)."""
    return getattr(sock, "_sock", sock)


def _explain(exc: Exception) -> str:
    """The engine's own words for an SDK error."""
    return str(getattr(exc, "explanation", None) or exc)


def _seconds(timeout: float | None) -> str:
    """The runner's timeout argument: 0 means none; tiny positive values stay positive."""
    return "0" if timeout is None else f"{max(timeout, 0.001):.3f}"


def _inputs(pfs_dir: Path, request: RunRequest) -> runner.InputTree:
    """The datum's inputs as the worker gave them: read into the request, or under its folder."""
    return runner.FolderInputs(pfs_dir) if request.inputs is None else runner.MemoryInputs(request.inputs)
