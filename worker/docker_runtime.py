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
from typing import Any, BinaryIO

import docker
import docker.errors
import requests.exceptions
from docker.types import LogConfig, Mount
from docker.utils import parse_repository_tag

from storage.errors import (
    HerdError,
    ImageNotFound,
    InvalidArgument,
    StorageUnavailable,
    UserCodeError,
)
from worker import docker_runner as runner
from worker.docker_wire import Answer, Channel, ChannelClosed, ChannelTimeout, read_answer, unpack_outputs
from worker.runtime import RunRequest, RunResult, Transform

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
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"  # labels; remove_leftovers
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

    def open(self, pipeline: str, transform: Transform) -> DockerSession:
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

    def remove_leftovers(self) -> int:
        """Remove every container this worker id left behind (a crash); returns how many."""
        with self.engine_errors("list leftover containers"):
            found = self.client.api.containers(all=True, filters={"label": f"herd.worker={self.worker_id}"})
        for entry in found:
            remove_container(self, entry["Id"])
        return len(found)

    @contextlib.contextmanager
    def engine_errors(self, action: str, image: str | None = None) -> Iterator[None]:
        """Translate docker SDK / requests exceptions into herd errors naming the image or engine."""
        try:
            yield
        except docker.errors.ImageNotFound as exc:
            raise ImageNotFound(image or "?", _explain(exc)) from None
        except docker.errors.APIError as exc:
            subject = f" for image '{image}'" if image else ""
            raise UserCodeError(f"docker could not {action}{subject}: {_explain(exc)}") from None
        except (requests.exceptions.ConnectionError, docker.errors.DockerException, ConnectionError) as exc:
            raise StorageUnavailable(f"{self.where} is unreachable ({action}): {exc}") from None


class DockerSession:
    """One pipeline's warm container; runs one datum at a time."""

    def __init__(self, runtime: DockerRuntime, pipeline: str, transform: Transform) -> None:
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

    def start(self) -> None:
        """Create, fill and start the container, then check both loops answer."""
        rt, image = self.runtime, self.transform.image
        with rt.engine_errors("create the container", image):
            self.container_id = rt.client.api.create_container(**self._create_args())["Id"]
        try:
            with rt.engine_errors("start the container", image):
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
            mounts=[Mount(runner.HERD_DIR, None, type="volume"), Mount("/pfs", None, type="volume")],
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
        """Copy the tools and /pfs skeleton in, attach the runner's stdin/stdout, start, exec the stager."""
        api, rt, cid = self.runtime.client.api, self.runtime, self.container_id
        api.put_archive(cid, runner.HERD_DIR, rt.tools())
        api.put_archive(cid, "/pfs", runner.pfs_tar(rt.stage_uid))
        attach = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        self._runner = Channel(_raw(api.attach_socket(cid, params=attach)), "runner")
        api.start(cid)
        if rt.transfer == "stream":
            command = [runner.BUSYBOX, "sh", runner.STAGER]
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
        """Run one datum: inputs in, the user cmd, outputs back into `<pfs_dir>/out`."""
        if self.container_id is None:
            self.start()  # the previous container died with its datum
        pfs_dir = Path(request.pfs_dir)
        self._seq += 1
        with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as outputs:
            started = time.monotonic()
            if self.runtime.transfer == "stream":
                answer = self._run_stream(pfs_dir, request, outputs)
            else:
                answer = self._run_archive(pfs_dir, request, outputs)
            duration = time.monotonic() - started
            outputs.seek(0)
            self._collect(answer, outputs, pfs_dir)
        return RunResult(
            exit_code=answer.exit_code, stdout=answer.stdout, stderr=answer.stderr, duration=duration,
            timed_out=answer.timed_out,
        )

    def _run_stream(self, pfs_dir: Path, request: RunRequest, outputs: BinaryIO) -> Answer:
        """The fast path, no engine call: inputs to the stager and the request to the runner go
        out together (the runner waits for the stager's word on a FIFO), then the answers."""
        assert self._runner is not None and self._stager is not None
        timeout, seq = request.timeout, self._seq
        try:
            self._send_inputs(pfs_dir, seq)
            self._runner.send(f"R {seq} {_seconds(timeout)} {runner.env_line(request.env)}\n")
        except (ChannelClosed, ChannelTimeout) as exc:
            raise self._died(str(exc)) from None
        except BaseException:
            self.close()  # half a request was sent: the streams are out of step
            raise
        self._check_staged(seq)
        deadline = None if timeout is None else time.monotonic() + timeout + self.runtime.kill_grace
        try:
            answer = read_answer(self._runner, deadline, outputs)
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

    def _send_inputs(self, pfs_dir: Path, seq: int) -> None:
        """The inputs as a cpio stream (a tar past 4 GiB files, whose length goes first)."""
        assert self._stager is not None
        if not runner.needs_tar(pfs_dir):
            self._stager.send(f"D {seq}\n", runner.cpio_chunks(pfs_dir, self.runtime.stage_uid))
            return
        with tempfile.TemporaryFile() as tar:
            runner.write_inputs_tar(pfs_dir, tar, uid=self.runtime.stage_uid)
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
            raise HerdError(f"cannot stage the inputs of pipeline '{self.pipeline}' in its container: {error}")

    def _run_archive(self, pfs_dir: Path, request: RunRequest, outputs: BinaryIO) -> Answer:
        """The fallback: exec a clear, put_archive the inputs, exec the runner once."""
        api, rt, cid = self.runtime.client.api, self.runtime, self.container_id
        argv = [runner.BUSYBOX, "sh", runner.RUNNER, "once", _seconds(request.timeout), runner.env_line(request.env)]
        with rt.engine_errors(f"run a datum of pipeline '{self.pipeline}'", self.transform.image):
            clear = [runner.BUSYBOX, "sh", runner.STAGER, "clear"]
            api.exec_start(api.exec_create(cid, clear, user=rt.stage_user)["Id"])
            with tempfile.SpooledTemporaryFile(SPOOL_BYTES) as tar:
                runner.write_inputs_tar(pfs_dir, tar, uid=rt.stage_uid)
                tar.seek(0)
                api.put_archive(cid, "/pfs", tar)
            exec_id = api.exec_create(cid, argv, user=self.transform.user or "")["Id"]
            channel = Channel(_raw(api.exec_start(exec_id, socket=True)), "runner (exec)")
        try:
            return read_answer(channel, None, outputs)
        except (ChannelClosed, ChannelTimeout) as exc:
            raise self._died(f"{exc} {channel.errors()}") from None
        finally:
            channel.close()

    def _collect(self, answer: Answer, outputs: BinaryIO, pfs_dir: Path) -> None:
        """Check the runner could archive /pfs/out, then unpack it into `<pfs_dir>/out`."""
        if answer.tar_status != 0:
            raise UserCodeError(f"cannot archive /pfs/out of pipeline '{self.pipeline}': {answer.tar_error.strip()}")
        unpack_outputs(outputs, pfs_dir, self.runtime.output_quota)

    def _died(self, detail: str) -> UserCodeError:
        """The container or a loop vanished mid-datum: forget it (the next datum starts another)."""
        errors = " ".join(c.errors() for c in (self._runner, self._stager) if c is not None and c.errors())
        self.close()
        return UserCodeError(
            f"the container of pipeline '{self.pipeline}' (image '{self.transform.image}') stopped during a "
            f"datum (killed by user code, out of memory?): {errors or detail}"
        )

    def close(self) -> None:
        """Remove the container with its volumes, then close the streams."""
        if self.container_id is not None:
            remove_container(self.runtime, self.container_id)
            self.container_id = None
        for channel in (self._runner, self._stager):
            if channel is not None:
                channel.close()
        self._runner = self._stager = None


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


