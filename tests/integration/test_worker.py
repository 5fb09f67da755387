"""The Worker against real job_svc and breaker_svc (in this process, over real gRPC channels, on
SQLite): results stored, ordinary and provider failures, an open breaker, lease renewal, a lost
lease, the concurrency limit, finishes that claim the next jobs (and claim nothing once the worker
stops)."""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from breaker.v1 import breaker_pb2
from google.protobuf import json_format
from job.v1 import job_pb2

from breaker_svc.store.memory import MemoryStore
from job_svc.domain import RetryPolicy
from services.breaker_state import BreakerState
from services.client import JobClient, JobContext, Worker
from services.client.breakers import BreakerClient
from tests.support.breaker import running_app
from tests.support.job import RunningJobs, claim_request, running_jobs, unique
from tests.support.polling import eventually

P = job_pb2


@dataclass
class Stack:
    jobs: JobClient
    breakers: BreakerClient
    job_svc: RunningJobs
    breaker_stub: Any


@asynccontextmanager
async def stack(database_url: str) -> AsyncIterator[Stack]:
    """breaker_svc (memory) and job_svc following it, both serving on port 0, and the clients."""
    async with running_app(MemoryStore()) as (breaker_app, breaker_stub):
        breaker_target = f"127.0.0.1:{breaker_app.port}"
        async with running_jobs(database_url, background=True, breaker_target=breaker_target, retry_policy=RetryPolicy(0.05, 0.2)) as job_svc:
            async with JobClient(f"127.0.0.1:{job_svc.app.port}", tls=None) as jobs, BreakerClient(breaker_target, tls=None) as breakers:
                yield Stack(jobs, breakers, job_svc, breaker_stub)


@pytest.fixture(scope="module")
async def shared(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    """One stack for the tests that neither move its clock nor change a breaker others use
    (each uses its own job type and dependency names)."""
    async with stack(f"sqlite:///{tmp_path_factory.mktemp('worker') / 'job.db'}") as running:
        yield running


@asynccontextmanager
async def running(worker: Worker, on: Stack) -> AsyncIterator[Worker]:
    task = asyncio.create_task(worker.run(on.jobs, on.breakers, handle_signals=False))
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 30)


def one_handler(job_type: str, handler: Callable[[JobContext], Awaitable[Any]], **options: Any) -> Worker:
    worker = Worker(claim_wait_s=5, **options)
    worker.handler(job_type)(handler)
    return worker


async def final(on: Stack, job_id: str, status: int, timeout_s: float = 10.0) -> job_pb2.Job:
    async def reached() -> job_pb2.Job | None:
        job = await on.jobs.get(job_id)
        return job if job.status == status else None

    return await eventually(reached, timeout_s)


async def test_a_returned_mapping_completes_the_job_and_is_stored_as_its_result(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()

    async def echo(job: JobContext) -> dict:
        async with job.guard(dependency):
            return {"lead": job.payload["lead"], "attempts_before": job.attempts}

    async with running(one_handler(job_type, echo), shared):
        created = await shared.jobs.create(job_type, [dependency], {"lead": 7})
        job = await final(shared, created.id, P.JOB_STATUS_COMPLETED)
    assert json_format.MessageToDict(job.result) == {"lead": 7, "attempts_before": 0}
    assert job.attempts == 0


async def test_an_ordinary_exception_fails_the_job_and_spends_an_attempt(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()

    async def broken(job: JobContext) -> dict:
        raise ValueError(f"lead {job.payload['lead']} has no domain")

    async with running(one_handler(job_type, broken), shared):
        created = await shared.jobs.create(job_type, [dependency], {"lead": 3}, max_attempts=1)
        job = await final(shared, created.id, P.JOB_STATUS_FAILED)
    assert job.attempts == 1
    assert job.last_error == "ValueError: lead 3 has no domain"


async def test_bad_results_and_undeclared_guards_are_the_jobs_fault_and_spare_the_other_jobs(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()
    cases = ("set", "list", "guard", "too large", "fine")
    ready = asyncio.Event()

    async def wrong(job: JobContext) -> Any:
        await ready.wait()  # all end together: their finishes share a batch
        case = job.payload["case"]
        if case == "set":
            return {"ids": {1, 2}}
        if case == "list":
            return [1, 2]
        if case == "too large":
            return {"blob": "x" * 5000}  # job_svc's limit here is 1 KiB
        if case == "guard":
            async with job.guard("undeclared"):
                return {}
        return {"ok": True}

    async with running(one_handler(job_type, wrong), shared):
        created = [await shared.jobs.create(job_type, [dependency], {"case": c}, max_attempts=1) for c in cases]
        ready.set()
        ended = [await final(shared, job.id, P.JOB_STATUS_FAILED) for job in created[:-1]]
        fine = await final(shared, created[-1].id, P.JOB_STATUS_COMPLETED)
    assert "not JSON-able" in ended[0].last_error
    assert "not a mapping" in ended[1].last_error
    assert "'undeclared' is not a dependency of job" in ended[2].last_error
    assert "job_svc refused this job's finish" in ended[3].last_error
    assert [job.attempts for job in ended] == [1, 1, 1, 1]
    assert json_format.MessageToDict(fine.result) == {"ok": True}


async def test_a_provider_failure_recorded_by_a_guard_spends_no_attempt(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()
    runs = 0

    async def flaky_provider(job: JobContext) -> dict:
        nonlocal runs
        runs += 1
        async with job.guard(dependency):
            if runs == 1:
                raise ConnectionError("provider answered 503")
        return {"runs": runs}

    async with running(one_handler(job_type, flaky_provider), shared):
        created = await shared.jobs.create(job_type, [dependency], max_attempts=1)
        job = await final(shared, created.id, P.JOB_STATUS_COMPLETED)
    # With max_attempts=1 an ordinary failure would have failed the job for good.
    assert (runs, job.attempts) == (2, 0)
    assert job.last_error == "ConnectionError: provider answered 503"


async def test_breaker_open_pauses_the_job_with_no_attempt_spent_until_the_breaker_closes(shared: Stack) -> None:
    job_type, first, second = unique("type"), unique(), unique()
    entered, go = asyncio.Event(), asyncio.Event()

    async def two_providers(job: JobContext) -> dict:
        async with job.guard(first):
            pass
        entered.set()
        await go.wait()
        async with job.guard(second):
            return {"done": True}

    async with running(one_handler(job_type, two_providers), shared):
        created = await shared.jobs.create(job_type, [first, second], max_attempts=1)
        await asyncio.wait_for(entered.wait(), 10)
        await shared.breaker_stub.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=second, reason="incident"))
        await eventually(lambda: _is_open(shared.breakers, second))
        go.set()
        paused = await final(shared, created.id, P.JOB_STATUS_PAUSED)
        assert [(h.kind, h.dependency) for h in paused.holds] == [(P.HOLD_KIND_BREAKER, second)]
        assert paused.attempts == 0 and "BreakerOpen" in paused.last_error
        await shared.breaker_stub.ForceClose(breaker_pb2.ForceCloseRequest(dependency=second, reason="recovered"))
        done = await final(shared, created.id, P.JOB_STATUS_COMPLETED)
    assert done.attempts == 0


async def _is_open(breakers: BreakerClient, dependency: str) -> bool:
    return breakers.state(dependency) is BreakerState.FORCED_OPEN


async def test_at_most_concurrency_handlers_run_at_once(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()
    now_running = most = 0

    async def counted(job: JobContext) -> None:
        nonlocal now_running, most
        now_running += 1
        most = max(most, now_running)
        await asyncio.sleep(0.1)
        now_running -= 1

    async with running(one_handler(job_type, counted, concurrency=3), shared):
        created = [await shared.jobs.create(job_type, [dependency]) for _ in range(12)]
        for job in created:
            await final(shared, job.id, P.JOB_STATUS_COMPLETED)
    assert most == 3


async def test_lease_renewal_keeps_a_job_that_runs_longer_than_its_lease(shared: Stack) -> None:
    job_type, dependency = unique("type"), unique()

    async def slow(job: JobContext) -> dict:
        await asyncio.sleep(2.5)
        return {"slow": True}

    async with running(one_handler(job_type, slow, lease_s=1), shared):
        created = await shared.jobs.create(job_type, [dependency])
        await final(shared, created.id, P.JOB_STATUS_PROCESSING)
        await asyncio.sleep(1.8)  # past the first lease; job_svc's sweeper runs every 0.2 s
        stolen = await shared.job_svc.stub.ClaimJobs(claim_request("thief", [dependency]))
        assert list(stolen.jobs) == []
        job = await final(shared, created.id, P.JOB_STATUS_COMPLETED)
    assert (job.attempts, job.lease_expirations) == (0, 0)


async def test_a_lost_lease_cancels_the_handler_and_its_late_result_is_not_applied(sqlite_url: str) -> None:
    job_type, dependency = unique("type"), unique()
    entered, cancelled = asyncio.Event(), asyncio.Event()

    async def stubborn(job: JobContext) -> dict:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
        return {"late": True}  # ignores the cancellation: the worker must still drop it

    async with stack(sqlite_url) as on:
        async with running(one_handler(job_type, stubborn, lease_s=3, concurrency=1), on):
            created = await on.jobs.create(job_type, [dependency])
            await asyncio.wait_for(entered.wait(), 10)
            on.job_svc.clock.advance(60)  # the lease has expired, as far as job_svc knows

            async def stolen() -> list[job_pb2.Job]:
                return list((await on.job_svc.stub.ClaimJobs(claim_request("thief", [dependency], lease_s=600))).jobs)

            assert [job.id for job in await eventually(stolen)] == [created.id]
            await asyncio.wait_for(cancelled.wait(), 5)  # the next renewal heard LOST
            await asyncio.sleep(0.3)  # time for a (wrongly) sent result to arrive
            job = await on.jobs.get(created.id)
    assert job.status == P.JOB_STATUS_PROCESSING and job.lease_owner == "thief"
    assert not job.HasField("result")


class CountedCalls:
    """Counts the JobClient calls that claim: ClaimJobs, and FinishJobs with a next claim (and the
    jobs those claimed)."""

    def __init__(self, jobs: JobClient, monkeypatch: pytest.MonkeyPatch) -> None:
        self.claims = self.finish_claims = self.claimed_by_finishes = 0
        claim, finish_and_claim = jobs.claim, jobs.finish_and_claim

        async def counted_claim(*args: Any, **kwargs: Any) -> list[job_pb2.Job]:
            self.claims += 1
            return await claim(*args, **kwargs)

        async def counted_finish_and_claim(*args: Any, **kwargs: Any) -> job_pb2.FinishJobsResponse:
            answer = await finish_and_claim(*args, **kwargs)
            self.finish_claims += 1
            self.claimed_by_finishes += len(answer.claimed_jobs)
            return answer

        monkeypatch.setattr(jobs, "claim", counted_claim)
        monkeypatch.setattr(jobs, "finish_and_claim", counted_finish_and_claim)


async def test_finishes_claim_the_next_jobs_so_a_busy_queue_takes_one_call_per_batch(
    shared: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_type, dependency = unique("type"), unique()
    ran: list[str] = []

    async def quick(job: JobContext) -> dict:
        ran.append(job.id)
        await asyncio.sleep(0.01)
        return {"n": job.payload["n"]}

    created = [await shared.jobs.create(job_type, [dependency], {"n": n}) for n in range(40)]
    calls = CountedCalls(shared.jobs, monkeypatch)
    async with running(one_handler(job_type, quick, concurrency=4), shared):
        for job in created:
            done = await final(shared, job.id, P.JOB_STATUS_COMPLETED)
            assert json_format.MessageToDict(done.result) == {"n": json_format.MessageToDict(job.payload)["n"]}
    assert sorted(ran) == sorted(j.id for j in created)  # each once
    assert calls.claimed_by_finishes >= 30  # the first claim took 4; finishes claimed (nearly) all the rest
    assert calls.claims <= 4  # the first, and waiting ones once finishes found the queue empty


async def test_a_stopping_worker_sends_its_last_finishes_without_claiming(shared: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    job_type, dependency = unique("type"), unique()
    started = asyncio.Event()

    async def slow(job: JobContext) -> None:
        started.set()
        await asyncio.sleep(0.3)

    created = [await shared.jobs.create(job_type, [dependency]) for _ in range(10)]
    calls = CountedCalls(shared.jobs, monkeypatch)
    async with running(one_handler(job_type, slow, concurrency=2), shared):
        await asyncio.wait_for(started.wait(), 10)
    statuses = Counter([(await shared.jobs.get(job.id)).status for job in created])
    assert statuses == {P.JOB_STATUS_COMPLETED: 2, P.JOB_STATUS_PENDING: 8}  # drained, nothing more claimed
    assert calls.finish_claims == 0


async def test_finishes_of_several_job_types_claim_for_the_type_most_of_them_ran(shared: Stack) -> None:
    types, dependency = [unique("type") for _ in range(2)], unique()
    worker = Worker(claim_wait_s=5, concurrency=4)
    for job_type in types:

        @worker.handler(job_type)
        async def quick(job: JobContext) -> dict:
            await asyncio.sleep(0.01)
            return {"type": job.job_type}

    created = [await shared.jobs.create(types[n % 2], [dependency]) for n in range(30)]
    async with running(worker, shared):
        for job in created:
            assert json_format.MessageToDict((await final(shared, job.id, P.JOB_STATUS_COMPLETED)).result) == {"type": job.job_type}
