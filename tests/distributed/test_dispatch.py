"""The scheduler's Redis side against a real redis-server, without workers: sent marks and
outcomes, and what the loop decides from them with storage's leases and results (lost batches,
restarts), and the scheduler lock."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from scheduler.attempts import Attempt, AttemptStore
from scheduler.broker import WAKE_TTL, Broker
from scheduler.dispatch_celery import CeleryDispatcher
from scheduler.job_records import DatumResult, DatumState
from scheduler.lock import SchedulerLock
from scheduler.loop import Scheduler
from scheduler.messages import DatumBatch
from scheduler.pipelines import Pipelines
from scheduler.reconcile import Forget, Resend, Watch
from scheduler.records import JobPlan
from scheduler.settings import SchedulerSettings
from scheduler.store import PpsStore, now
from storage.objects import MemoryObjectStore
from storage.repos import Pfs
from tests.distributed.conftest import fresh_database
from tests.fixtures.redis import RedisServer
from tests.fixtures.services import free_port
from tests.fakes import LosingDispatcher

pytestmark = pytest.mark.redis

RESEND = 0.3


@dataclass
class Setup:
    settings: SchedulerSettings
    pfs: Pfs
    records: PpsStore
    plan: JobPlan

    def dispatcher(self) -> CeleryDispatcher:
        assert self.settings.broker
        return CeleryDispatcher(Broker(self.settings.broker, self.settings.queue), self.settings)

    def scheduler(self, dispatcher: CeleryDispatcher) -> Scheduler:
        return Scheduler(self.pfs, dispatcher, parallelism=2, resend_seconds=RESEND)

    def step(self, scheduler: Scheduler) -> list:
        """One observe-decide-apply round of the job, as a pass of the service makes it."""
        (pipeline,) = self.records.list_pipelines()
        return scheduler.step(pipeline, self.plan.job_id, self.plan.inputs)


@pytest.fixture
def setup(redis_server: RedisServer) -> Iterator[Setup]:
    """A planned 3-datum job in memory storage and a Redis database of its own."""
    database = fresh_database(redis_server)
    objects = MemoryObjectStore()
    pfs = Pfs(objects)
    pfs.create_repo("in")
    pfs.put_files("in", "master", [(f"/{n}", b"x") for n in "abc"])
    Pipelines(pfs).create({"pipeline": {"name": "p"}, "transform": {"cmd": ["true"]},
                           "input": {"pfs": {"repo": "in", "glob": "/*"}}})
    capture = LosingDispatcher()
    Scheduler(pfs, capture).tick()
    records = PpsStore(objects)
    plan = records.read_plan(capture.batches[0].job_id)
    assert plan is not None and len(plan.datums) == 3
    settings = SchedulerSettings(
        broker=f"redis://127.0.0.1:{redis_server.port}/{database}", queue=f"t{uuid.uuid4().hex[:8]}",
        resend_seconds=RESEND, parallelism=2,
    )
    yield Setup(settings, pfs, records, plan)


def purge(dispatcher: CeleryDispatcher) -> None:
    """Lose every queued message, as a wiped or failed-over Redis would."""
    with dispatcher.app.pool.acquire(block=True) as conn:
        conn.default_channel.queue_purge(dispatcher.queue)


def in_flight(dispatcher: CeleryDispatcher, job_id: str) -> set[int]:
    return {i for mark in dispatcher.sent(job_id) for i in mark.datums}


def test_a_queued_batch_stays_in_flight_until_lost(setup: Setup) -> None:
    # Given a batch sent and waiting in the queue (no worker)
    dispatcher = setup.dispatcher()
    scheduler = setup.scheduler(dispatcher)
    dispatcher.submit(DatumBatch(job_id=setup.plan.job_id, datums=(0, 1, 2)))
    assert in_flight(dispatcher, setup.plan.job_id) == {0, 1, 2}
    # When its mark is old but the queue still holds messages: Then nothing is sent again
    time.sleep(RESEND + 0.1)
    assert dispatcher.queue_size() == 1
    assert setup.step(scheduler) == []
    # When the message is lost: Then with no result and no lease the datums are sent again
    purge(dispatcher)
    actions = setup.step(scheduler)
    assert [type(a) for a in actions] == [Forget, Resend, Resend, Resend]
    assert sorted(i for a in actions[1:] for i in a.datums) == [0, 1, 2]
    dispatcher.close()


def test_old_batches_are_judged_by_storage_leases_and_results(setup: Setup) -> None:
    # Given a batch sent long ago whose message is gone; datum 0 is running, datum 1 finished
    dispatcher = setup.dispatcher()
    scheduler = setup.scheduler(dispatcher)
    job_id = setup.plan.job_id
    dispatcher.submit(DatumBatch(job_id=job_id, datums=(0, 1, 2)))
    purge(dispatcher)
    d0, d1 = setup.plan.datums[0], setup.plan.datums[1]
    AttemptStore(setup.pfs.objects).claim(
        Attempt(job_id=job_id, datum_id=d0.id, number=1, worker="w", holder="w/1", lease_until=time.time() + 60)
    )
    setup.records.put_result(DatumResult(job_id=job_id, datum_id=d1.id, datum_hash=d1.hash,
                                         state=DatumState.SUCCESS, started=now(), finished=now()))
    time.sleep(RESEND + 0.1)

    # When the scheduler looks at the job
    actions = setup.step(scheduler)

    # Then the leased datum is watched, the finished one left alone, the lost one sent again
    (task_id,) = [a.keys for a in actions if isinstance(a, Forget)][0]
    assert [a for a in actions if not isinstance(a, Forget)] == [Watch((0,)), Resend((2,))]
    marks = dispatcher.sent(job_id)
    assert task_id not in {m.key for m in marks}
    assert sorted((m.watch, m.datums) for m in marks) == [(False, (2,)), (True, (0,))]
    dispatcher.close()


def test_worker_outcomes_settle_marks_and_deferred_datums_come_back(setup: Setup) -> None:
    # Given two batches sent
    dispatcher = setup.dispatcher()
    job_id = setup.plan.job_id
    dispatcher.submit(DatumBatch(job_id=job_id, datums=(0, 1)))
    dispatcher.submit(DatumBatch(job_id=job_id, datums=(2,)))
    first, second = dispatcher.broker.sent(job_id)

    # When workers report: the first batch ran 0 and deferred 1 to a lease holder
    dispatcher.results.store_result(first, {"job_id": job_id, "done": [0], "deferred": [1]}, "SUCCESS")
    outcomes = dispatcher.wait(2.0)

    # Then the outcome reaches the loop and its mark goes; the second batch is still awaited
    assert [(o.done, o.deferred) for o in outcomes] == [((0,), (1,))]
    assert in_flight(dispatcher, job_id) == {2}
    assert second in dispatcher.broker.sent(job_id) and first not in dispatcher.broker.sent(job_id)
    dispatcher.close()


def test_a_restarted_scheduler_adopts_the_batches_already_sent(setup: Setup) -> None:
    # Given a batch sent by a scheduler that then died
    job_id = setup.plan.job_id
    old = setup.dispatcher()
    old.submit(DatumBatch(job_id=job_id, datums=(0, 1, 2)))
    (task_id,) = old.broker.sent(job_id)
    old.close()

    # When a new scheduler starts: Then it sends nothing again, and takes the batch's outcome
    new = setup.dispatcher()
    assert setup.step(setup.scheduler(new)) == []
    new.results.store_result(task_id, {"job_id": job_id, "done": [0, 1, 2]}, "SUCCESS")
    assert [o.done for o in new.wait(2.0)] == [(0, 1, 2)]
    new.close()


def test_one_scheduler_holds_the_lock_and_a_standby_takes_over(setup: Setup) -> None:
    # Given two schedulers' locks on one broker
    assert setup.settings.broker
    broker = Broker(setup.settings.broker, setup.settings.queue)
    first, second = SchedulerLock(broker, ttl=1.0), SchedulerLock(broker, ttl=1.0)
    # Then only the first to ask holds it, and renewing keeps it
    assert first.hold() and not second.hold()
    assert first.hold()
    # When the holder releases it: Then the standby takes it at once
    first.release()
    assert second.hold()
    # When the holder stops renewing (it died): Then the lock expires and another takes it
    third = SchedulerLock(broker, ttl=1.0)
    assert not third.hold()
    time.sleep(1.2)
    assert third.hold()
    assert not second.hold()  # the old holder sees it lost the lock
    broker.close()


def test_a_change_wakes_the_waiting_scheduler_before_its_pass_is_due(setup: Setup) -> None:
    # Given the service's wait for outcomes (HERD_RECONCILE_INTERVAL bounds it), nothing sent
    dispatcher = setup.dispatcher()
    assert setup.settings.broker
    other = Broker(setup.settings.broker, setup.settings.queue)
    try:
        # When a change (put-file through the CLI or the server) wakes the scheduler
        threading.Timer(0.3, other.wake).start()
        started = time.monotonic()
        outcomes = dispatcher.wait(timeout=60)
        # Then the wait ends on the wake, with no outcome, and the next pass starts at once
        assert outcomes == [] and time.monotonic() - started < 30
        assert not dispatcher.broker.woken(0.05)  # taken: the wake was for one pass
    finally:
        other.close()
        dispatcher.close()


def test_wakes_nobody_takes_collapse_into_one_that_expires(setup: Setup) -> None:
    assert setup.settings.broker
    broker = Broker(setup.settings.broker, setup.settings.queue)
    try:
        for _ in range(5):
            broker.wake()
        key = broker.key("wake")
        assert broker.client.llen(key) == 1 and 0 < broker.client.ttl(key) <= WAKE_TTL
        assert broker.woken(0.05) and not broker.woken(0.05)
    finally:
        broker.close()


def test_a_change_through_the_python_api_wakes_the_service_and_a_broker_away_fails_nothing(setup: Setup) -> None:
    # Given the API of a cluster (HERD_BROKER set): settle() is what every changing verb ends with
    from scheduler.cli.wiring import Herd, load_all_settings

    settings = load_all_settings()
    assert setup.settings.broker
    settings["scheduler"] = setup.settings
    broker = Broker(setup.settings.broker, setup.settings.queue)
    try:
        Herd(settings).settle()
        assert broker.woken(1.0)
        # A broker that is away: the change is stored already, and the next pass finds it
        settings["scheduler"] = setup.settings.model_copy(update={"broker": f"redis://127.0.0.1:{free_port()}/0"})
        Herd(settings).settle()
    finally:
        broker.close()


def test_the_service_passes_woken_by_outcomes_skip_the_listing_until_the_idle_poll(setup: Setup) -> None:
    # Given the service over a planned job, its passes counted by the listings they make
    from scheduler.loop import IDLE_POLL
    from scheduler.service import SchedulerService

    service = SchedulerService(setup.pfs, setup.settings)
    scheduler, listings = service.scheduler, []
    list_pipelines = scheduler.records.list_pipelines
    scheduler.records.list_pipelines = lambda: listings.append(1) or list_pipelines()  # type: ignore[method-assign]
    try:
        service._tick()  # a full pass: it sends the job's batches
        assert len(listings) == 1
        sent = service.dispatcher.broker.sent(setup.plan.job_id)
        assert sent and not scheduler.moved

        # When a worker stores a batch's outcome and wakes the scheduler
        first = next(iter(sent))
        service.dispatcher.results.store_result(first, {"job_id": setup.plan.job_id, "done": []}, "SUCCESS")
        service.broker.wake()
        again = service._wait(30.0)
        # Then the next pass reads the job only, as the embedded loop's does
        assert again
        service._tick(again)
        assert len(listings) == 1

        # A wake with no outcome (a change through the CLI) is a full pass; so is one after IDLE_POLL
        service.broker.wake()
        assert not service._wait(30.0)
        service._tick()
        assert len(listings) == 2
        time.sleep(IDLE_POLL + 0.1)
        second = next(key for key in service.dispatcher.broker.sent(setup.plan.job_id) if key != first)
        service.dispatcher.results.store_result(second, {"job_id": setup.plan.job_id, "done": []}, "SUCCESS")
        assert not service._wait(30.0)
    finally:
        service.dispatcher.close()
        service.broker.close()
