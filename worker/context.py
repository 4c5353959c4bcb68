"""What a worker process keeps between batches: stores, the runtime, warm sessions, scratch.

Scratch: `<HERD_SCRATCH>/<context id>/<datum folder>`, an empty datum folder per attempt
(removed after it, or emptied for a later attempt: staging.empty_for_reuse), the context's
folder removed when the context closes. A process killed
with SIGKILL cannot clean up: its folder holds a `.lock` it keeps flock'ed while alive, and
the next context on the machine removes every folder whose lock nobody holds.
"""

from __future__ import annotations

import atexit
import dataclasses
import fcntl
import os
import queue
import stat
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from scheduler.attempts import Attempt, DatumLedger
from scheduler.ledger import Ledger
from scheduler.records import JobPlan, PlannedDatum
from scheduler.spec import PipelineSpec, parse_spec
from scheduler.store import PpsStore
from storage.blobs import BlobStore
from storage.errors import HerdError
from storage.objects import ObjectStore
from storage.setting_types import load_settings
from worker.process_io import RunCancelled
from worker.runtime import RunRequest, Runtime, Session, UserCode
from worker.image_digest import job_image, runs_image_id
from worker.runtimes import open_runtime
from worker.secrets import secret_mounts
from worker.settings import WorkerSettings
from worker.staging import clear_pfs, empty_for_reuse

SCRATCH_LOCK = ".lock"


class WorkerContext:
    """Per-process state; sessions and scratch folders are per thread (a session runs one datum at a time)."""

    def __init__(self, objects: ObjectStore, settings: WorkerSettings, runtime: str | None = None) -> None:
        self.objects = objects
        self.settings = settings
        self.blobs = BlobStore(objects)
        self.ledger: DatumLedger = Ledger(objects)
        self.runtime_name = runtime or settings.runtime
        self.leases = Leases(self)
        # Leases are judged on the broker's clock when there is one (one clock for all hosts), and
        # name this context, not only the worker: two processes may share a HERD_WORKER_ID.
        self.clock: Callable[[], float] = time.time
        if settings.broker:
            # Imported here: the embedded default (no broker) runs without herd[cluster]'s redis.
            from worker.clock import BrokerClock

            self.clock = BrokerClock(settings.broker)
        self.holder = f"{settings.worker_id}/{uuid.uuid4().hex[:12]}"
        # Results go to a thread of their own where a write waits on the network (worker/result_writer.py).
        self.remote_store = local_root(objects) is None
        self._runtime: Runtime | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        self._specs: dict[tuple[str, int], PipelineSpec] = {}
        self._sessions: list[Session] = []
        self._job_images: dict[str, str] = {}  # job id -> the image id its datums run
        self._scratch_root = Path(settings.scratch).absolute()
        self._scratch = self._scratch_root / uuid.uuid4().hex[:12]
        self._scratch_lock: int | None = None
        self._remover = _Remover()
        self._closed = False

    @property
    def runtime(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                # User code must never see the storage folder nor other datums' scratch folders.
                protect = [path for path in (local_root(self.objects), self._scratch_root) if path is not None]
                self._runtime = open_runtime(self.settings, protect=protect, name=self.runtime_name)
            return self._runtime

    def spec(self, plan: JobPlan) -> PipelineSpec:
        key = (plan.pipeline, plan.pipeline_version)
        if key not in self._specs:
            self._specs[key] = parse_spec(plan.spec)
        return self._specs[key]

    def session(self, plan: JobPlan, spec: PipelineSpec, err_cmd: bool = False) -> Session:
        """This thread's warm session for the pipeline version (opened on first use); err_cmd:
        the one running transform.err_cmd (opened when a datum first needs it)."""
        self._check_open()
        sessions: dict[tuple[str, int, bool], Session] = self._local.__dict__.setdefault("sessions", {})
        key = (plan.pipeline, plan.pipeline_version, err_cmd)
        image = self.job_image(plan, spec)
        images: dict[tuple[str, int, bool], str] = self._local.__dict__.setdefault("images", {})
        if key in sessions and images.get(key) != image:
            self.drop_session(plan, err_cmd)  # this job runs another image than the session's (a tag moved)
        if key not in sessions:
            for old_key in [k for k in sessions if k[0] == plan.pipeline and k[1] != plan.pipeline_version]:
                sessions.pop(old_key).close()  # an older version of the pipeline: its container goes
            transform = dataclasses.replace(
                err_transform_of(spec) if err_cmd else transform_of(spec), network=self.settings.user_network,
                secret_mounts=secret_mounts(spec.transform.secrets, self.settings.secrets_dir),
            )
            if runs_image_id(image):  # the job's recorded image id, never the tag: tags move
                transform = dataclasses.replace(transform, image=image)
            session = self.runtime.open(plan.pipeline, transform)
            with self._lock:
                if not self._closed:  # cancel() may have run since the check above
                    self._sessions.append(session)
            if self._closed:
                session.close()
                self._check_open()
            sessions[key] = session
            images[key] = image
        return sessions[key]

    def job_image(self, plan: JobPlan, spec: PipelineSpec) -> str:
        """The image id every datum of the job runs (worker/image_digest.py): read or recorded
        once per job in this process."""
        with self._lock:
            found = self._job_images.get(plan.job_id)
        if found is None:
            found = job_image(PpsStore(self.objects), self.runtime, plan.job_id, spec.transform.image)
            with self._lock:
                if len(self._job_images) >= 1024:  # old jobs' ids: a worker runs for months
                    self._job_images.clear()
                self._job_images[plan.job_id] = found
        return found

    def drop_session(self, plan: JobPlan, err_cmd: bool = False) -> None:
        """Forget this thread's session of the pipeline version (closed under a running datum)."""
        sessions: dict[tuple[str, int, bool], Session] = self._local.__dict__.setdefault("sessions", {})
        session = sessions.pop((plan.pipeline, plan.pipeline_version, err_cmd), None)
        if session is not None:
            with self._lock:
                if session in self._sessions:
                    self._sessions.remove(session)
            try:
                session.close()
            except Exception:  # noqa: BLE001 - it was closed already; closing twice is best effort
                pass

    def pfs_dir(self) -> Path:
        """An empty folder for one datum's /pfs: new, or one an earlier datum left and `discard`
        emptied (it may hold empty input folders, which staging removes or fills)."""
        self._check_open()
        with self._lock:
            if self._scratch_lock is None:
                self._scratch_lock = _claim_scratch(self._scratch_root, self._scratch)
        reused = self._remover.take()
        if reused is not None:
            return reused
        path = self._scratch / uuid.uuid4().hex[:16]
        path.mkdir()
        return path

    def discard(self, pfs_dir: Path, reuse: bool = False) -> None:
        """Empty (reuse: every process of the datum is gone) or remove a finished datum's folder,
        off the datum's path (close() waits for it)."""
        self._remover.remove(pfs_dir, reuse)

    def _check_open(self) -> None:
        if self._closed:
            raise RunCancelled("the worker is stopping: no new datum starts")

    def request(self, plan: JobPlan, spec: PipelineSpec, datum: PlannedDatum, pfs_dir: Path) -> RunRequest:
        return RunRequest(pfs_dir=pfs_dir, env=datum_env(plan, datum), timeout=spec.datum_timeout)

    def cancel(self) -> None:
        """Stop: no datum starts any more, and user code running now is killed (RunCancelled)."""
        with self._lock:
            self._closed = True
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing is best effort at exit
                pass

    def close(self) -> None:
        """cancel(), then remove this context's scratch folder."""
        self.leases.stop()
        self.cancel()
        with self._lock:
            lock, self._scratch_lock = self._scratch_lock, None
        self._remover.drain()
        self._remover.forget()
        if lock is not None:
            clear_pfs(self._scratch)
            os.close(lock)


class _Remover:
    """One background thread empties or removes finished datums' folders.

    Removing a tree the sandbox has just unmounted waits in the kernel for about a millisecond,
    a fifth of a trivial datum; every process of the datum is gone by then and the next datum
    has a folder of its own, so nothing needs that wait. A folder emptied for reuse
    (staging.empty_for_reuse) is handed to a later datum; close() drains the thread.
    """

    def __init__(self) -> None:
        self._queue: queue.Queue[tuple[Path, bool]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._emptied: list[Path] = []
        self._mode: int | None = None

    def take(self) -> Path | None:
        """An emptied folder, or None."""
        with self._lock:
            return self._emptied.pop() if self._emptied else None

    def forget(self) -> None:
        """Hand out no emptied folder any more (the context's folder is being removed)."""
        with self._lock:
            self._emptied.clear()

    def remove(self, folder: Path, reuse: bool = False) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="herd-scratch-remover", daemon=True)
                self._thread.start()
        self._queue.put((folder, reuse))

    def _run(self) -> None:
        while True:
            folder, reuse = self._queue.get()
            try:
                if self._mode is None:  # the bits mkdir gives a folder under this process's umask
                    self._mode = stat.S_IMODE(os.stat(folder.parent).st_mode)
                if reuse and empty_for_reuse(folder, self._mode):
                    with self._lock:
                        self._emptied.append(folder)
                else:
                    clear_pfs(folder)
            except OSError:
                pass  # the context's folder is removed whole at close, and swept after a crash
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every folder handed over so far is emptied or removed."""
        self._queue.join()


def local_root(objects: ObjectStore) -> Path | None:
    """The folder of a local (file://) object store, through any wrapper; None for others."""
    url = urlparse(getattr(objects, "url", "") or "")
    return Path(unquote(url.path)) if url.scheme == "file" else None


def _claim_scratch(root: Path, folder: Path) -> int:
    """Create `folder` holding a lock for this process's life; remove dead processes' folders."""
    # Locked under a dot name, then renamed: a folder without a held lock is never visible.
    root.mkdir(parents=True, exist_ok=True)
    making = root / f".new-{folder.name}"
    making.mkdir()
    fd = os.open(making / SCRATCH_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    making.rename(folder)
    for entry in root.iterdir():
        if entry != folder and not entry.name.startswith("."):
            _remove_if_abandoned(entry)
    return fd


def _remove_if_abandoned(folder: Path) -> None:
    """Remove a context folder whose lock nobody holds (its process died without cleaning up)."""
    try:
        fd = os.open(folder / SCRATCH_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return  # not ours, or a context being created right now
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return  # alive
    try:
        clear_pfs(folder)
    finally:
        os.close(fd)


class Lease:
    """An attempt this process runs; `cancel` (from the heartbeat thread) kills its user code."""

    def __init__(self, attempt: Attempt) -> None:
        self.attempt = attempt
        self.cancelled: str | None = None  # why, once cancelled
        self._kill: Callable[[], None] | None = None
        self._lock = threading.Lock()

    def on_cancel(self, kill: Callable[[], None]) -> None:
        """What kills the running user code; called at once if the lease was cancelled already."""
        with self._lock:
            self._kill = kill
            cancelled = self.cancelled
        if cancelled:
            _quietly(kill)

    def cancel(self, why: str) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = why
            kill = self._kill
        if kill is not None:
            _quietly(kill)


def _quietly(kill: Callable[[], None]) -> None:
    try:
        kill()
    except Exception:  # noqa: BLE001 - the run ends either way; the datum thread sees `cancelled`
        pass


class Leases:
    """One thread per worker process renews the lease of every attempt it is running, so a
    long datum is not taken for lost; a short one costs no thread of its own. Each beat also
    looks for what ends an attempt from outside: restart-datum's marker, or the job ended
    (stop-job, job_timeout), and then kills that datum's user code."""

    def __init__(self, ctx: WorkerContext) -> None:
        self._ctx = ctx
        self._held: set[Lease] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, attempt: Attempt) -> Lease:
        lease = Lease(attempt)
        with self._lock:
            self._held.add(lease)
            if self._thread is None:
                self._thread = threading.Thread(target=self._beat, name="herd-leases", daemon=True)
                self._thread.start()
        return lease

    def release(self, lease: Lease) -> None:
        with self._lock:
            self._held.discard(lease)

    def _beat(self) -> None:
        interval = max(0.5, self._ctx.settings.lease_seconds / 3)
        while not self._stop.wait(interval):
            with self._lock:
                held = list(self._held)
            ended: dict[str, bool] = {}
            for lease in held:
                try:
                    self._check(lease, ended)
                except HerdError:
                    pass  # the next beat tries again; an expired lease only means a duplicate run

    def _check(self, lease: Lease, ended: dict[str, bool]) -> None:
        ledger, attempt = self._ctx.ledger, lease.attempt
        if ledger.restarted(attempt):
            lease.cancel("restart-datum")
            return
        job_id = attempt.job_id
        if job_id not in ended:
            ended[job_id] = ledger.job_ended(job_id)
        if ended[job_id]:
            lease.cancel("the job ended")
            return
        ledger.renew(dataclasses.replace(attempt, lease_until=self._ctx.clock() + self._ctx.settings.lease_seconds))

    def stop(self) -> None:
        self._stop.set()


def datum_env(plan: JobPlan, datum: PlannedDatum) -> dict[str, str]:
    """The environment Pachyderm gives user code (1.x names, plus 2.x's PACH_DATUM_ID)."""
    env = {
        "PACH_JOB_ID": plan.job_id,
        "PACH_DATUM_ID": datum.id,
        "PACH_OUTPUT_COMMIT_ID": plan.job_id,
        "PPS_PIPELINE_NAME": plan.pipeline,
    }
    for item in plan.current(datum).inputs:
        env[item.name] = f"/pfs/{item.name}" + ("" if item.path == "/" else item.path)
        env[f"{item.name}_COMMIT"] = item.commit
        if item.join_on:  # a join's or a group's input (Pachyderm 2.x)
            env[f"PACH_DATUM_{item.name}_JOIN_ON"] = item.join_on
        if item.group_by:
            env[f"PACH_DATUM_{item.name}_GROUP_BY"] = item.group_by
    return env


def transform_of(spec: PipelineSpec) -> UserCode:
    t = spec.transform
    limits = spec.resource_limits
    return UserCode(
        image=t.image,
        cmd=tuple(t.cmd),
        stdin=tuple(t.stdin or ()),
        env=dict(t.env or {}),
        working_dir=t.working_dir,
        user=t.user,
        accept_return_code=tuple(t.accept_return_code or ()),
        cpu=getattr(limits, "cpu", None) if limits else None,
        memory=getattr(limits, "memory", None) if limits else None,
    )


def err_transform_of(spec: PipelineSpec) -> UserCode:
    """The transform with err_cmd and err_stdin in place of cmd and stdin (Pachyderm runs it
    like the cmd: same image, env, user, working dir and limits)."""
    t = spec.transform
    return dataclasses.replace(transform_of(spec), cmd=tuple(t.err_cmd or ()), stdin=tuple(t.err_stdin))


_contexts: dict[tuple[int, str | None], WorkerContext] = {}
_contexts_lock = threading.Lock()


def context_for(
    objects: ObjectStore, runtime: str | None = None, *, settings: WorkerSettings | None = None
) -> WorkerContext:
    """The process's context for this object store (built once, closed at exit).

    `settings` are the entry point's, loaded once (`herd worker`'s app, the CLI's embedded run):
    the first call for a store builds the context from them; later calls find it."""
    key = (id(objects), runtime)
    with _contexts_lock:
        if key not in _contexts:
            if settings is None:  # a caller that does not pass them yet (process_batch called directly)
                settings = load_settings(WorkerSettings)
            _contexts[key] = WorkerContext(objects, settings, runtime)
        return _contexts[key]


def release_context(objects: ObjectStore, cancel: bool = False) -> None:
    """Close and forget the contexts built for `objects` (their warm sessions end).

    cancel=True: only stop them (running user code is killed, no datum starts), keeping them
    so that a later call, once their threads are done, removes their scratch folders."""
    with _contexts_lock:
        keys = [k for k, ctx in _contexts.items() if ctx.objects is objects]
        contexts = [_contexts[k] if cancel else _contexts.pop(k) for k in keys]
    for ctx in contexts:
        ctx.cancel() if cancel else ctx.close()


def close_contexts() -> None:
    with _contexts_lock:
        contexts = list(_contexts.values())
        _contexts.clear()
    for ctx in contexts:
        ctx.close()


atexit.register(close_contexts)
