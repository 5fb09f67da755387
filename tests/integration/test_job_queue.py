"""The queue's batch and waiting calls through a real gRPC channel, on PostgreSQL and on SQLite:
CreateJobs, waiting claims and what wakes them, FinishJobs, RenewLeases, RedriveJobs, priority,
scheduled starts, results, retention and poison protection."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, timedelta

import asyncpg
import grpc
import pytest
from sqlalchemy import event, select, text
from google.protobuf.duration_pb2 import Duration
from job.v1 import job_pb2

from job_svc import leases, metrics
from job_svc.domain import HoldKind, NewJob, QueuePolicy, RedriveSelector, RetryPolicy
from job_svc.store import JobTx, hold_key
from job_svc.tables import breaker_outbox, job_dependencies
from job_svc.wakeups import CHANNEL
from services.watch import BreakerState, Transition
from tests.support.polling import eventually
from tests.support.job import (
    RunningJobs,
    claim_request,
    create_jobs,
    create_request,
    database_of,
    expect_error,
    job_settings,
    running_jobs,
    unique,
)

S = job_pb2
INVALID = grpc.StatusCode.INVALID_ARGUMENT
HELD, LOST = S.LEASE_RESULT_HELD, S.LEASE_RESULT_LOST
# Waiting claims here are woken only by announcements: the safety-net re-check is far away.
POLICY = QueuePolicy(max_lease_expirations=2, claim_recheck_s=30.0, retention_s=3600.0, retention_batch=2)
FAST_RETRY = RetryPolicy(base_s=0.3, max_s=1.0)


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def backend_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    async with database_of(request.param, tmp_path_factory) as url:
        yield url


@pytest.fixture(scope="module")
async def svc(backend_url: str) -> AsyncIterator[RunningJobs]:
    async with running_jobs(backend_url, queue_policy=POLICY, retry_policy=FAST_RETRY) as running:
        await listening(running)
        yield running


async def listening(svc: RunningJobs) -> None:
    if svc.app.engine.dialect.name == "postgresql":
        await asyncio.wait_for(svc.app.listener.listening.wait(), 10)


_revisions = iter(range(1, 1_000_000))


async def transition(svc: RunningJobs, dependency: str, from_state: BreakerState, to_state: BreakerState) -> None:
    await svc.app.mirror.apply_transition(Transition(next(_revisions), dependency, from_state, to_state, 1, "test"))


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def waiting_claim(svc: RunningJobs, worker: str, dependencies: list[str], wait_s: float = 5.0) -> "asyncio.Task[job_pb2.ClaimJobsResponse]":
    request = claim_request(worker, dependencies, 10)
    request.wait.CopyFrom(seconds(wait_s))

    async def claim() -> job_pb2.ClaimJobsResponse:
        return await svc.stub.ClaimJobs(request)

    return asyncio.create_task(claim())


async def still_waiting(task: asyncio.Task, for_s: float = 0.3) -> None:
    await asyncio.sleep(for_s)
    assert not task.done(), "it finished before what it waits for happened"


async def get(svc: RunningJobs, job_id: str) -> job_pb2.Job:
    return (await svc.stub.GetJob(job_pb2.GetJobRequest(id=job_id))).job


async def outbox(svc: RunningJobs, dependency: str) -> list[tuple[str, bool]]:
    async with svc.app.engine.connect() as connection:
        rows = await connection.execute(select(breaker_outbox.c.dependency, breaker_outbox.c.success).where(breaker_outbox.c.dependency == dependency))
        return [(r.dependency, r.success) for r in rows]


async def dependency_rows(svc: RunningJobs, dependency: str) -> list[str]:
    async with svc.app.engine.connect() as connection:
        rows = await connection.execute(select(job_dependencies.c.job_id).where(job_dependencies.c.dependency == dependency))
        return sorted(rows.scalars())


def completion(job_id: str, **result: object) -> job_pb2.JobFinish:
    finish = job_pb2.JobFinish(id=job_id, completion=job_pb2.JobCompletion())
    if result:
        finish.completion.result.update(result)
    return finish


def failure(job_id: str, error: str, failed_dependency: str = "") -> job_pb2.JobFinish:
    return job_pb2.JobFinish(id=job_id, failure=job_pb2.JobFailure(error=error, failed_dependency=failed_dependency))


# -- CreateJobs ----------------------------------------------------------------------------------


async def test_create_jobs_answers_in_request_order_and_repeats_return_the_first_job(svc: RunningJobs) -> None:
    dependency, key = unique(), f"req-{uuid.uuid4()}"
    first = (await svc.stub.CreateJob(create_request([dependency], request_id=key))).job
    items = [create_request([dependency], job_type=f"t{i}") for i in range(3)]
    items += [create_request([dependency], request_id=key), create_request([dependency], request_id="in-batch"),
              create_request([dependency], request_id="in-batch", job_type="ignored")]
    jobs = (await svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items))).jobs
    assert [j.job_type for j in jobs[:3]] == ["t0", "t1", "t2"]
    assert jobs[3] == first and jobs[4].id == jobs[5].id and jobs[5].job_type == "enrich"
    listed = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs
    assert len(listed) == 5 and {j.id for j in listed} == {j.id for j in jobs}


async def test_create_jobs_is_all_or_nothing_and_names_the_bad_item(svc: RunningJobs) -> None:
    dependency = unique()
    items = [create_request([dependency]), create_request([dependency], priority=101)]
    await expect_error(lambda: svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items)), INVALID, "jobs[1]: priority")
    assert not (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs
    await expect_error(lambda: svc.stub.CreateJobs(job_pb2.CreateJobsRequest()), INVALID, "between 1 and 1000")
    too_many = [create_request([dependency])] * 1001
    await expect_error(lambda: svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=too_many)), INVALID, "between 1 and 1000")


@pytest.mark.parametrize("payload, message", [
    ({"lead": 1, "score": float("nan")}, "jobs[1]: payload must not contain NaN or Infinity (JSON has no such numbers)"),
    ({"lead": [1, {"score": float("-inf")}]}, "jobs[1]: payload must not contain NaN or Infinity (JSON has no such numbers)"),
    ({"lead": "a\x00b"}, "jobs[1]: payload must not contain NUL characters"),
    ({"text": "x" * 1014}, "jobs[1]: payload must be at most 1024 bytes as JSON, got 1025"),
    ({"text": "é" * 200}, "jobs[1]: payload must be at most 1024 bytes as JSON, got 1211"),
])
async def test_create_jobs_refuses_a_payload_json_cannot_hold_or_over_the_cap_and_stores_nothing(
    svc: RunningJobs, payload: dict, message: str
) -> None:
    dependency, bad = unique(), create_request([unique()])
    bad.payload.update(payload)
    request = job_pb2.CreateJobsRequest(jobs=[create_request([dependency]), bad], view=S.JOB_VIEW_BASIC)
    assert await expect_error(lambda: svc.stub.CreateJobs(request), INVALID) == message
    assert not (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs


async def test_the_basic_view_answers_only_the_ids_and_statuses_of_the_jobs_it_creates(svc: RunningJobs) -> None:
    down, up, key = unique(), unique(), f"req-{uuid.uuid4()}"
    await transition(svc, down, BreakerState.CLOSED, BreakerState.OPEN)
    first = (await svc.stub.CreateJob(create_request([up], request_id=key))).job
    items = [create_request([up], request_id=key), create_request([down]), create_request([up], priority=-7)]
    items[2].payload.update({"lead": "ada@example.com", "n": 2})
    answered = (await svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items, view=S.JOB_VIEW_BASIC))).jobs
    assert all(job == job_pb2.Job(id=job.id, status=job.status) for job in answered)
    assert answered[0].id == first.id
    assert [job.status for job in answered] == [S.JOB_STATUS_PENDING, S.JOB_STATUS_PAUSED, S.JOB_STATUS_PENDING]
    stored = (await svc.stub.GetJob(job_pb2.GetJobRequest(id=answered[2].id))).job
    assert dict(stored.payload) == {"lead": "ada@example.com", "n": 2} and stored.priority == -7


@pytest.mark.parametrize("view", [S.JOB_VIEW_UNSPECIFIED, S.JOB_VIEW_FULL])
async def test_unset_and_full_views_answer_the_whole_job_as_stored(svc: RunningJobs, view: int) -> None:
    item = create_request([unique()], request_id=f"req-{uuid.uuid4()}", priority=3, max_attempts=5)
    item.payload.update({"lead": {"domain": "example.com", "tags": ["a", None, True]}, "n": 2})
    job = (await svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=[item], view=view))).jobs[0]
    assert job == (await svc.stub.GetJob(job_pb2.GetJobRequest(id=job.id))).job
    assert job.create_time == job.update_time == job.run_after_time and job.create_time.seconds > 0


async def test_an_unknown_view_is_refused_and_nothing_is_stored(svc: RunningJobs) -> None:
    dependency = unique()
    request = job_pb2.CreateJobsRequest(jobs=[create_request([dependency])], view=7)
    await expect_error(lambda: svc.stub.CreateJobs(request), INVALID, "view 7 is not a known JobView")
    assert not (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs


async def test_created_jobs_of_an_open_breaker_are_paused_at_birth(svc: RunningJobs) -> None:
    down, up = unique(), unique()
    await transition(svc, down, BreakerState.CLOSED, BreakerState.OPEN)
    items = [create_request([down]), create_request([up]), create_request([down, up])]
    jobs = (await svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items))).jobs
    assert [j.status for j in jobs] == [S.JOB_STATUS_PAUSED, S.JOB_STATUS_PENDING, S.JOB_STATUS_PAUSED]
    assert [h.dependency for h in jobs[2].holds] == [down]


async def test_priority_orders_claims_and_a_scheduled_start_waits(svc: RunningJobs) -> None:
    dependency = unique()
    later = create_request([dependency], priority=-100)
    later.delay.CopyFrom(seconds(3600))
    at = create_request([dependency], priority=-100)
    at.run_time.FromDatetime(svc.clock() + timedelta(hours=1))
    items = [create_request([dependency], priority=5), create_request([dependency], priority=-3), later, at, create_request([dependency])]
    jobs = (await svc.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items))).jobs
    assert jobs[2].run_after_time.ToDatetime(tzinfo=UTC) > svc.clock() + timedelta(minutes=59)
    claimed = (await svc.stub.ClaimJobs(claim_request("w", [dependency], 10))).jobs
    assert [j.id for j in claimed] == [jobs[1].id, jobs[4].id, jobs[0].id]
    assert [j.priority for j in claimed] == [-3, 0, 5]


@pytest.mark.parametrize("fields, message", [({"priority": -101}, "priority"), ({"delay": Duration(seconds=-1)}, "delay")])
async def test_create_refuses_bad_priority_and_start(svc: RunningJobs, fields: dict, message: str) -> None:
    await expect_error(lambda: svc.stub.CreateJob(create_request(["openai"], **fields)), INVALID, message)


async def test_list_jobs_filters_by_job_type(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2, job_type="verify")
    await create_jobs(svc.stub, [dependency], 1, job_type="enrich")
    listed = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, job_type="verify"))).jobs
    assert [j.job_type for j in listed] == ["verify", "verify"]


# -- waiting claims ------------------------------------------------------------------------------


async def test_a_waiting_claim_is_woken_by_a_new_job(svc: RunningJobs) -> None:
    dependency = unique()
    claim = waiting_claim(svc, "waiter", [dependency])
    await still_waiting(claim)
    created = (await create_jobs(svc.stub, [dependency], 1))[0]
    started = time.monotonic()
    assert [j.id for j in (await asyncio.wait_for(claim, 3)).jobs] == [created.id]
    assert time.monotonic() - started < 1.0


async def test_a_waiting_claim_is_woken_by_a_breaker_closing(svc: RunningJobs) -> None:
    dependency = unique()
    await transition(svc, dependency, BreakerState.CLOSED, BreakerState.OPEN)
    created = (await create_jobs(svc.stub, [dependency], 1))[0]
    claim = waiting_claim(svc, "waiter", [dependency])
    await still_waiting(claim)
    await transition(svc, dependency, BreakerState.OPEN, BreakerState.CLOSED)
    assert [j.id for j in (await asyncio.wait_for(claim, 3)).jobs] == [created.id]


async def test_a_waiting_claim_is_woken_when_a_retry_backoff_ends(svc: RunningJobs) -> None:
    dependency = unique()
    created = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))
    await svc.stub.FailJob(job_pb2.FailJobRequest(id=created.id, worker_id="w1", error="try again"))
    started = time.monotonic()
    claimed = (await asyncio.wait_for(waiting_claim(svc, "w2", [dependency]), 5)).jobs
    assert [j.id for j in claimed] == [created.id] and 0.1 < time.monotonic() - started < 2.0


async def test_a_waiting_claim_is_woken_by_an_expired_lease_returned_to_the_queue(svc: RunningJobs) -> None:
    dependency = unique()
    created = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.ClaimJobs(claim_request("doomed", [dependency], 1, lease_s=60))
    claim = waiting_claim(svc, "heir", [dependency])
    await still_waiting(claim)
    svc.clock.advance(61)
    await svc.app.jobs.requeue_expired()  # the sweeper's pass
    assert [j.id for j in (await asyncio.wait_for(claim, 3)).jobs] == [created.id]


async def test_a_process_wakes_its_own_claims_at_commit_and_hears_the_others(postgres_url: str) -> None:
    """PostgreSQL: a create wakes this process's waiting claims as it commits, before its
    answer, and the listener skips the create's NOTIFY (it names this process); a notification
    from another process, or from a job_svc that names no sender, still wakes them."""
    async with running_jobs(postgres_url, queue_policy=POLICY) as own:
        await listening(own)
        await asyncio.sleep(0.3)  # the listener's catch-up on connecting wakes everyone once
        signal = own.app.signal
        before = signal.generation
        await create_jobs(own.stub, [unique()], 1)
        assert signal.generation == before + 1  # woken at commit, not by the notification
        await asyncio.sleep(0.3)
        assert signal.generation == before + 1  # its own NOTIFY skipped
        connection = await asyncpg.connect(postgres_url)
        try:
            for payload, wakes in (("", before + 2), ("another-process|", before + 3)):
                await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)

                async def woken(wakes: int = wakes) -> bool:
                    return signal.generation == wakes

                await eventually(woken, timeout_s=5)
        finally:
            await connection.close()


async def test_a_wait_with_nothing_to_claim_ends_empty_and_a_bad_wait_is_refused(svc: RunningJobs) -> None:
    started = time.monotonic()
    assert not (await waiting_claim(svc, "idle", [unique()], wait_s=0.3)).jobs
    assert 0.25 < time.monotonic() - started < 2.0
    request = claim_request("w", ["openai"], 1)
    request.wait.CopyFrom(seconds(61))
    await expect_error(lambda: svc.stub.ClaimJobs(request), INVALID, "wait must be between 0s and 60s")


# -- FinishJobs and RenewLeases ------------------------------------------------------------------


async def test_finish_jobs_applies_what_the_worker_holds_and_reports_lost_leases(svc: RunningJobs) -> None:
    a, b = unique(), unique()
    jobs = await create_jobs(svc.stub, [a, b], 4, max_attempts=1)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [a, b], 3))).jobs
    assert len(claimed) == 3
    unclaimed = next(j for j in jobs if j.id not in {c.id for c in claimed})
    request = job_pb2.FinishJobsRequest(worker_id="w1", finishes=[
        completion(claimed[0].id, emails=3), failure(claimed[1].id, "503", failed_dependency=a),
        failure(claimed[2].id, "bad input"), completion(unclaimed.id),
    ])
    results = (await svc.stub.FinishJobs(request)).results
    assert [(r.id, r.lease_result, r.status) for r in results] == [
        (claimed[0].id, HELD, S.JOB_STATUS_COMPLETED), (claimed[1].id, HELD, S.JOB_STATUS_PENDING),
        (claimed[2].id, HELD, S.JOB_STATUS_FAILED), (unclaimed.id, LOST, S.JOB_STATUS_UNSPECIFIED),
    ]
    done = await get(svc, claimed[0].id)
    assert dict(done.result) == {"emails": 3} and done.status == S.JOB_STATUS_COMPLETED
    assert (await get(svc, claimed[1].id)).attempts == 0  # the provider's fault
    assert (await get(svc, unclaimed.id)).status == S.JOB_STATUS_PENDING
    again = (await svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[0].id)]))).results
    assert [r.lease_result for r in again] == [LOST]


async def test_finish_jobs_forwards_no_outcome_for_a_worker_that_recorded_its_own(svc: RunningJobs) -> None:
    """A worker whose guards reported every call marks its finishes `outcomes_recorded`: job_svc
    then adds nothing to the outbox, so breaker_svc counts each call once."""
    recorded, forwarded = unique(), unique()
    await create_jobs(svc.stub, [recorded], 2)
    await create_jobs(svc.stub, [forwarded], 2)
    mine = (await svc.stub.ClaimJobs(claim_request("w1", [recorded], 2))).jobs
    theirs = (await svc.stub.ClaimJobs(claim_request("w1", [forwarded], 2))).jobs
    finishes = [completion(mine[0].id), failure(mine[1].id, "503", failed_dependency=recorded),
                completion(theirs[0].id), failure(theirs[1].id, "503", failed_dependency=forwarded)]
    for finish in finishes[:2]:
        finish.outcomes_recorded = True
    await svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=finishes))
    assert await outbox(svc, recorded) == []
    assert sorted(await outbox(svc, forwarded)) == [(forwarded, False), (forwarded, True)]
    assert (await get(svc, mine[1].id)).attempts == 0  # still the provider's fault


async def test_finish_jobs_refuses_bad_items_and_applies_nothing(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2))).jobs
    bad_provider = job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[0].id), failure(claimed[1].id, "x", "other")])
    await expect_error(lambda: svc.stub.FinishJobs(bad_provider), INVALID, "finishes[1]: failed_dependency 'other'")
    assert (await get(svc, claimed[0].id)).status == S.JOB_STATUS_PROCESSING
    twice = job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[0].id), completion(claimed[0].id)])
    await expect_error(lambda: svc.stub.FinishJobs(twice), INVALID, "finishes[1]: job")
    neither = job_pb2.FinishJobsRequest(worker_id="w1", finishes=[job_pb2.JobFinish(id=claimed[0].id)])
    await expect_error(lambda: svc.stub.FinishJobs(neither), INVALID, "finishes[0]: set completion or failure")
    big = completion(claimed[0].id, text="x" * 2000)
    await expect_error(lambda: svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=[big])), INVALID, "result must be at most")


async def test_complete_job_stores_its_result(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))
    request = job_pb2.CompleteJobRequest(id=job.id, worker_id="w1")
    request.result.update({"score": 0.9, "tags": ["a"]})
    done = (await svc.stub.CompleteJob(request)).job
    assert dict(done.result) == {"score": 0.9, "tags": ["a"]} and done == await get(svc, job.id)


# -- FinishJobs with next_claim -------------------------------------------------------------------


def finish_and_claim(worker: str, finishes: list[job_pb2.JobFinish], max_jobs: int, dependencies: list[str], **fields: object) -> job_pb2.FinishJobsRequest:
    claim = job_pb2.NextClaim(max_jobs=max_jobs, dependencies=dependencies, **fields)
    return job_pb2.FinishJobsRequest(worker_id=worker, finishes=finishes, next_claim=claim)


async def test_finish_jobs_with_a_next_claim_answers_the_finishes_and_leases_the_next_jobs(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2, priority=-1)
    later = await create_jobs(svc.stub, [dependency], 4)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2))).jobs
    answer = await svc.stub.FinishJobs(finish_and_claim(
        "w1", [completion(claimed[0].id, emails=3), failure(claimed[1].id, "bad input")], 3, [dependency], lease_duration=seconds(120)
    ))
    assert [(r.id, r.lease_result) for r in answer.results] == [(claimed[0].id, HELD), (claimed[1].id, HELD)]
    next_jobs = answer.claimed_jobs
    assert [j.id for j in next_jobs] == [j.id for j in later[:3]]  # in claim order
    for job in next_jobs:
        assert (job.status, job.lease_owner, job.job_type, list(job.dependencies)) == (S.JOB_STATUS_PROCESSING, "w1", "enrich", [dependency])
        assert job.lease_expire_time.ToDatetime(tzinfo=UTC) > svc.clock() + timedelta(seconds=110)
        assert job == await get(svc, job.id)  # the whole job, as stored
    assert dict((await get(svc, claimed[0].id)).result) == {"emails": 3}
    # Leased: another worker gets only the job left over, and the first worker can finish them.
    assert [j.id for j in (await svc.stub.ClaimJobs(claim_request("w2", [dependency], 10))).jobs] == [later[3].id]
    results = (await svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(j.id) for j in next_jobs]))).results
    assert {r.lease_result for r in results} == {HELD}


async def test_a_next_claim_finds_an_empty_queue_and_lost_leases_are_still_answered_lost(svc: RunningJobs) -> None:
    dependency, other = unique(), unique()
    await create_jobs(svc.stub, [dependency], 2)
    theirs = (await create_jobs(svc.stub, [other], 1))[0]
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2))).jobs
    finishes = [completion(claimed[0].id), completion(claimed[1].id), completion(theirs.id)]
    answer = await svc.stub.FinishJobs(finish_and_claim("w1", finishes, 5, [dependency]))
    assert [r.lease_result for r in answer.results] == [HELD, HELD, LOST]
    assert list(answer.claimed_jobs) == []  # nothing claimable: back to a waiting ClaimJobs
    # The lost item does not hold the claim back: it takes what is claimable.
    await svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[0].id)]))
    more = await create_jobs(svc.stub, [dependency], 1)
    answer = await svc.stub.FinishJobs(finish_and_claim("w1", [completion(claimed[0].id)], 5, [dependency]))
    assert [r.lease_result for r in answer.results] == [LOST]
    assert [j.id for j in answer.claimed_jobs] == [more[0].id]
    assert (await get(svc, theirs.id)).status == S.JOB_STATUS_PENDING


@pytest.mark.parametrize("fields, message", [
    ({"max_jobs": 0}, "next_claim.max_jobs must be between 1 and 1000, got 0"),
    ({"max_jobs": 1001}, "next_claim.max_jobs must be between 1 and 1000"),
    ({"lease_duration": Duration(seconds=0, nanos=500_000_000)}, "next_claim.lease_duration must be between 1s and 1h"),
    ({"lease_duration": Duration(seconds=3601)}, "next_claim.lease_duration must be between 1s and 1h"),
    ({"lease_duration": Duration(seconds=-1)}, "next_claim.lease_duration must not be negative"),
    ({"dependencies": ["Bad Name"]}, "next_claim.dependencies 'Bad Name' is malformed"),
    ({"dependencies": [f"d{i}" for i in range(21)]}, "next_claim.dependencies may name at most 20"),
    ({"job_type": "x" * 101}, "next_claim.job_type must be at most 100 characters"),
])
async def test_a_bad_next_claim_is_refused_naming_its_field_and_nothing_is_applied(svc: RunningJobs, fields: dict, message: str) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))).jobs
    claim = job_pb2.NextClaim(**{"max_jobs": 1, "dependencies": [dependency], **fields})
    request = job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[0].id)], next_claim=claim)
    await expect_error(lambda: svc.stub.FinishJobs(request), INVALID, message)
    assert (await get(svc, claimed[0].id)).status == S.JOB_STATUS_PROCESSING
    jobs = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs
    assert sorted(j.status for j in jobs) == [S.JOB_STATUS_PENDING, S.JOB_STATUS_PROCESSING]


async def test_a_next_claim_names_the_requests_own_worker_id(svc: RunningJobs) -> None:
    request = finish_and_claim("", [completion(str(uuid.uuid4()))], 1, [])
    details = await expect_error(lambda: svc.stub.FinishJobs(request), INVALID, "worker_id is required")
    assert "next_claim" not in details


async def test_a_next_claim_that_fails_after_the_finishes_committed_still_answers_them(
    svc: RunningJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a failure among the finishes, the claim follows their commit on both backends."""
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 3)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2))).jobs

    async def storage_down(_request: object) -> list:
        raise ConnectionError("storage went away")

    monkeypatch.setattr(svc.app.jobs, "_claim", storage_down)
    failures_before = metrics.NEXT_CLAIM_FAILURES._value.get()
    finishes = [completion(claimed[0].id), failure(claimed[1].id, "bad input")]
    answer = await svc.stub.FinishJobs(finish_and_claim("w1", finishes, 5, [dependency]))
    assert [(r.lease_result, r.status) for r in answer.results] == [(HELD, S.JOB_STATUS_COMPLETED), (HELD, S.JOB_STATUS_PENDING)]
    assert list(answer.claimed_jobs) == [] and metrics.NEXT_CLAIM_FAILURES._value.get() == failures_before + 1
    assert (await get(svc, claimed[0].id)).status == S.JOB_STATUS_COMPLETED
    monkeypatch.undo()
    assert len((await svc.stub.ClaimJobs(claim_request("w1", [dependency], 5))).jobs) == 1  # still pending (the retry backs off)


class Statements:
    """Counts the statements run on the service's engine."""

    def __init__(self, svc: RunningJobs) -> None:
        self.engine, self.count = svc.app.engine.sync_engine, 0

    def __enter__(self) -> "Statements":
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


@pytest.fixture
async def on_postgres(postgres_url: str) -> AsyncIterator[RunningJobs]:
    """job_svc on PostgreSQL alone, for what only PostgreSQL does in one statement (SQLite
    completes and claims in two)."""
    async with running_jobs(postgres_url, queue_policy=POLICY, retry_policy=FAST_RETRY) as running:
        await listening(running)
        yield running


async def test_completions_and_a_next_claim_are_one_statement_on_postgres(on_postgres: RunningJobs) -> None:
    """Lost leases are answered, the claim proceeds, and the successes reach the outbox under
    the call's request id, all in one statement."""
    svc = on_postgres
    dependency, other = unique(), unique()
    await create_jobs(svc.stub, [dependency], 2, priority=-1)
    later = await create_jobs(svc.stub, [dependency], 3)
    theirs = (await create_jobs(svc.stub, [other], 1))[0]
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2))).jobs
    finishes = [completion(claimed[0].id, n=1), completion(theirs.id), completion(claimed[1].id)]
    request = finish_and_claim("w1", finishes, 2, [dependency], lease_duration=seconds(120))
    with Statements(svc) as statements:
        answer = await svc.stub.FinishJobs(request, metadata=(("x-request-id", "finish-and-claim"),))
    assert statements.count == 1
    assert [(r.lease_result, r.status) for r in answer.results] == [
        (HELD, S.JOB_STATUS_COMPLETED), (LOST, S.JOB_STATUS_UNSPECIFIED), (HELD, S.JOB_STATUS_COMPLETED)
    ]
    assert [j.id for j in answer.claimed_jobs] == [j.id for j in later[:2]]  # in claim order
    for job in answer.claimed_jobs:
        assert (job.status, job.lease_owner, list(job.dependencies)) == (S.JOB_STATUS_PROCESSING, "w1", [dependency])
        assert job == await get(svc, job.id)
    assert dict((await get(svc, claimed[0].id)).result) == {"n": 1}
    assert (await get(svc, theirs.id)).status == S.JOB_STATUS_PENDING
    async with svc.app.engine.connect() as connection:
        query = select(breaker_outbox.c.success, breaker_outbox.c.request_id).where(breaker_outbox.c.dependency == dependency)
        rows = [(r.success, r.request_id) for r in await connection.execute(query)]
    assert rows == [(True, "finish-and-claim")] * 2


async def test_completions_and_a_next_claim_that_fail_together_fail_the_call_and_apply_nothing(
    on_postgres: RunningJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: one statement applies both or neither, so the call fails like a failed finish
    (here the database refuses the claim's LIMIT) and a retry is answered HELD."""
    svc = on_postgres
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))).jobs
    claim_values = leases._claim_values
    monkeypatch.setattr(leases, "_claim_values", lambda request, now: claim_values(request, now) | {"max_jobs": -1})
    request = finish_and_claim("w1", [completion(claimed[0].id)], 5, [dependency])
    await expect_error(lambda: svc.stub.FinishJobs(request), grpc.StatusCode.INTERNAL)
    assert (await get(svc, claimed[0].id)).status == S.JOB_STATUS_PROCESSING
    assert await outbox(svc, dependency) == []
    monkeypatch.undo()
    answer = await svc.stub.FinishJobs(request)
    assert [r.lease_result for r in answer.results] == [HELD] and len(answer.claimed_jobs) == 1


async def test_a_next_claim_held_back_by_an_expired_lease_requeues_it_and_claims_its_job(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 2)
    mine = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1, lease_s=120))).jobs[0]
    lapsed = (await svc.stub.ClaimJobs(claim_request("w2", [dependency], 1, lease_s=1))).jobs[0]
    svc.clock.advance(5)  # w2's lease has expired (not yet swept); nothing is pending
    answer = await svc.stub.FinishJobs(finish_and_claim("w1", [completion(mine.id)], 5, [dependency]))
    assert [(r.lease_result, r.status) for r in answer.results] == [(HELD, S.JOB_STATUS_COMPLETED)]
    assert [(j.id, j.lease_owner, j.lease_expirations) for j in answer.claimed_jobs] == [(lapsed.id, "w1", 1)]


async def test_a_failing_expired_lease_check_after_the_completions_committed_still_answers_them(
    svc: RunningJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 1)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))).jobs

    async def storage_down(*_: object) -> bool:
        raise ConnectionError("storage went away")

    monkeypatch.setattr(JobTx, "has_expired_leases", storage_down)
    failures_before = metrics.NEXT_CLAIM_FAILURES._value.get()
    answer = await svc.stub.FinishJobs(finish_and_claim("w1", [completion(claimed[0].id)], 5, [dependency]))
    assert [(r.lease_result, r.status) for r in answer.results] == [(HELD, S.JOB_STATUS_COMPLETED)]
    assert list(answer.claimed_jobs) == [] and metrics.NEXT_CLAIM_FAILURES._value.get() == failures_before + 1


# -- concurrent calls share transactions (services.batching) ------------------------------------


class JobInserts:
    """Counts the statements that insert jobs on the service's engine."""

    def __init__(self, svc: RunningJobs) -> None:
        self.engine, self.count = svc.app.engine.sync_engine, 0

    def __enter__(self) -> "JobInserts":
        event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)

    def _seen(self, _connection: object, _cursor: object, statement: str, *_: object) -> None:
        self.count += "INSERT INTO jobs" in statement


async def test_concurrent_creates_share_transactions_and_each_gets_its_own_job(svc: RunningJobs) -> None:
    dependency, key = unique(), f"req-{uuid.uuid4()}"
    requests = [create_request([dependency], job_type=f"t{i}") for i in range(20)]
    requests += [create_request([dependency], request_id=key) for _ in range(10)]
    with JobInserts(svc) as inserts:
        answers = await asyncio.gather(*(svc.stub.CreateJob(request) for request in requests))
    created, repeated = answers[:20], answers[20:]
    assert [a.job.job_type for a in created] == [f"t{i}" for i in range(20)]
    assert len({a.job.id for a in repeated}) == 1  # one job per request id, whichever call came first
    listed = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, page_size=100))).jobs
    assert {j.id for j in listed} == {a.job.id for a in answers} and len(listed) == 21
    assert inserts.count < len(requests)  # shared: fewer INSERTs than calls


async def test_concurrent_finishes_of_a_worker_share_transactions_and_each_gets_its_own_answer(svc: RunningJobs) -> None:
    dependency = unique()
    jobs = await create_jobs(svc.stub, [dependency], 7)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 6))).jobs
    unclaimed = next(j for j in jobs if j.id not in {c.id for c in claimed})

    def complete(job_id: str):  # type: ignore[no-untyped-def]
        return svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=job_id, worker_id="w1"))

    calls = [complete(job.id) for job in claimed[:4]]
    calls.append(svc.stub.FailJob(job_pb2.FailJobRequest(id=claimed[4].id, worker_id="w1", error="x", failed_dependency="nope")))
    calls.append(svc.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w1", finishes=[completion(claimed[5].id, n=5)])))
    calls += [complete(unclaimed.id), complete(claimed[0].id)]  # not held; and a second finish of one job
    answers = await asyncio.gather(*calls, return_exceptions=True)

    codes = [a.code() if isinstance(a, grpc.aio.AioRpcError) else grpc.StatusCode.OK for a in answers]
    assert codes[1:4] == [grpc.StatusCode.OK] * 3
    assert sorted([codes[0], codes[7]], key=str) == sorted([grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION], key=str)
    assert codes[4:7] == [INVALID, grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION]
    assert "nope" in answers[4].details()
    assert [r.lease_result for r in answers[5].results] == [HELD]
    statuses = [(await get(svc, job.id)).status for job in claimed]
    assert statuses == [S.JOB_STATUS_COMPLETED] * 4 + [S.JOB_STATUS_PROCESSING, S.JOB_STATUS_COMPLETED]
    assert dict((await get(svc, claimed[5].id)).result) == {"n": 5}


async def test_finishes_sharing_a_transaction_forward_outcomes_under_their_own_request_ids(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 4)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 4))).jobs
    await asyncio.gather(
        *(svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=job.id, worker_id="w1"), metadata=(("x-request-id", f"done-{i}"),))
          for i, job in enumerate(claimed[:3])),
        svc.stub.FailJob(job_pb2.FailJobRequest(id=claimed[3].id, worker_id="w1", error="503", failed_dependency=dependency),
                         metadata=(("x-request-id", "failed-3"),)),
    )
    async with svc.app.engine.connect() as connection:
        query = select(breaker_outbox.c.success, breaker_outbox.c.request_id).where(breaker_outbox.c.dependency == dependency)
        rows = sorted((r.success, r.request_id) for r in await connection.execute(query))
    assert rows == [(False, "failed-3"), (True, "done-0"), (True, "done-1"), (True, "done-2")]


async def test_renewed_leases_outlive_their_first_end_and_lost_ones_refuse_late_results(svc: RunningJobs) -> None:
    dependency = unique()
    jobs = await create_jobs(svc.stub, [dependency], 2)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2, lease_s=5))).jobs
    renew = job_pb2.RenewLeasesRequest(worker_id="w1", ids=[claimed[0].id], lease_duration=seconds(60))
    renewal = (await svc.stub.RenewLeases(renew)).renewals[0]
    assert renewal.lease_result == HELD
    assert renewal.lease_expire_time.ToDatetime(tzinfo=UTC) > svc.clock() + timedelta(seconds=55)
    svc.clock.advance(10)  # the second lease has expired (not yet swept)
    both = (await svc.stub.RenewLeases(job_pb2.RenewLeasesRequest(worker_id="w1", ids=[j.id for j in claimed]))).renewals
    assert [r.lease_result for r in both] == [HELD, LOST] and not both[1].HasField("lease_expire_time")
    late = job_pb2.CompleteJobRequest(id=claimed[1].id, worker_id="w1")
    await expect_error(lambda: svc.stub.CompleteJob(late), grpc.StatusCode.FAILED_PRECONDITION, "expired")
    other = (await svc.stub.RenewLeases(job_pb2.RenewLeasesRequest(worker_id="w2", ids=[claimed[0].id]))).renewals
    assert [r.lease_result for r in other] == [LOST]
    assert {j.id for j in jobs} == {j.id for j in claimed}


async def test_renew_leases_checks_its_input(svc: RunningJobs) -> None:
    some_id = str(uuid.uuid4())
    await expect_error(lambda: svc.stub.RenewLeases(job_pb2.RenewLeasesRequest(worker_id="w", ids=[])), INVALID, "ids")
    await expect_error(lambda: svc.stub.RenewLeases(job_pb2.RenewLeasesRequest(worker_id="", ids=[some_id])), INVALID, "worker_id")
    twice = job_pb2.RenewLeasesRequest(worker_id="w", ids=[some_id, some_id])
    await expect_error(lambda: svc.stub.RenewLeases(twice), INVALID, "ids[1]")
    short = job_pb2.RenewLeasesRequest(worker_id="w", ids=[some_id], lease_duration=seconds(0.5))
    await expect_error(lambda: svc.stub.RenewLeases(short), INVALID, "lease_duration")


# -- RedriveJobs ---------------------------------------------------------------------------------


async def test_redrive_puts_failed_and_cancelled_jobs_back_with_fresh_attempts(svc: RunningJobs) -> None:
    dependency, campaign = unique(), str(uuid.uuid4())
    failed, cancelled, pending = await create_jobs(svc.stub, [dependency], 3, max_attempts=1, campaign_id=campaign, job_type="redrive")
    await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))
    await svc.stub.FailJob(job_pb2.FailJobRequest(id=failed.id, worker_id="w1", error="broken"))
    await svc.stub.CancelJob(job_pb2.CancelJobRequest(id=cancelled.id))
    only_failed = job_pb2.RedriveJobsRequest(status=S.JOB_STATUS_FAILED, campaign_id=campaign)
    assert (await svc.stub.RedriveJobs(only_failed)).redriven_count == 1
    again = await get(svc, failed.id)
    assert (again.status, again.attempts, again.last_error) == (S.JOB_STATUS_PENDING, 0, "broken")
    assert (await svc.stub.RedriveJobs(job_pb2.RedriveJobsRequest(ids=[cancelled.id, pending.id]))).redriven_count == 1
    assert (await get(svc, cancelled.id)).status == S.JOB_STATUS_PENDING


async def test_redrive_refuses_an_empty_selection_and_other_statuses(svc: RunningJobs) -> None:
    await expect_error(lambda: svc.stub.RedriveJobs(job_pb2.RedriveJobsRequest()), INVALID, "name the jobs")
    pending = job_pb2.RedriveJobsRequest(status=S.JOB_STATUS_PENDING)
    await expect_error(lambda: svc.stub.RedriveJobs(pending), INVALID, "failed or cancelled")


async def test_redrive_needs_the_admin_token(backend_url: str) -> None:
    server = replace(job_settings(backend_url).server, admin_token="s3cret")
    async with running_jobs(backend_url, server=server) as secured:
        request = job_pb2.RedriveJobsRequest(status=S.JOB_STATUS_FAILED)
        await expect_error(lambda: secured.stub.RedriveJobs(request), grpc.StatusCode.UNAUTHENTICATED, "ADMIN_TOKEN")
        response = await secured.stub.RedriveJobs(request, metadata=[("authorization", "Bearer s3cret")])
        assert response.redriven_count >= 0


# -- poison protection and retention (own services: they move the clock a long way) ---------------


async def test_a_job_whose_lease_keeps_expiring_fails_and_can_be_redriven(backend_url: str) -> None:
    async with running_jobs(backend_url, queue_policy=POLICY) as own:
        dependency = unique()
        job = (await create_jobs(own.stub, [dependency], 1))[0]
        for expirations in (1, 2):
            await own.stub.ClaimJobs(claim_request(f"crashing-{expirations}", [dependency], 1, lease_s=1))
            own.clock.advance(2)
            await own.app.jobs.requeue_expired()
            seen = await get(own, job.id)
            assert seen.lease_expirations == expirations
        assert seen.status == S.JOB_STATUS_FAILED and seen.attempts == 0
        assert "lease expired 2 times without a result, last held by crashing-2" in seen.last_error
        assert (await own.stub.RedriveJobs(job_pb2.RedriveJobsRequest(ids=[job.id]))).redriven_count == 1
        assert (await get(own, job.id)).lease_expirations == 0


async def test_retention_deletes_old_completed_and_cancelled_jobs_in_batches(backend_url: str) -> None:
    async with running_jobs(backend_url, queue_policy=POLICY) as own:
        dependency = unique()
        jobs = await create_jobs(own.stub, [dependency], 5, max_attempts=1)
        claimed = (await own.stub.ClaimJobs(claim_request("w", [dependency], 3))).jobs
        finishes = [completion(claimed[0].id), completion(claimed[1].id), failure(claimed[2].id, "kept for re-drive")]
        await own.stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w", finishes=finishes))
        unfinished = [j for j in jobs if j.id not in {c.id for c in claimed}]
        await own.stub.CancelJob(job_pb2.CancelJobRequest(id=unfinished[0].id))
        assert await own.app.jobs.delete_old_finished_jobs() == 0  # not old yet
        own.clock.advance(POLICY.retention_s + 1)
        assert await own.app.jobs.delete_old_finished_jobs() >= 3  # in batches of 2
        left = {j.id: j.status for j in (await own.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency))).jobs}
        assert left == {claimed[2].id: S.JOB_STATUS_FAILED, unfinished[1].id: S.JOB_STATUS_PENDING}
        # No foreign key cascades them (migration 0009): the deleted jobs' dependency rows went
        # in the same statement, the kept jobs' stay.
        assert await dependency_rows(own, dependency) == sorted(left)


async def test_the_next_due_time_is_the_earliest_later_run_of_a_pending_job_of_any_priority(database_url: str) -> None:
    async with running_jobs(database_url) as own:  # a database of its own: the answer is about every job
        async with own.app.store.transaction() as tx:
            assert await tx.next_due(own.clock()) is None
        dependency, items = unique(), []
        for priority, hours in ((-100, 3), (7, 2), (100, 4), (-100, 1)):
            items.append(create_request([dependency], priority=priority))
            items[-1].delay.CopyFrom(seconds(hours * 3600))
        items.append(create_request([dependency], priority=50))  # due now: not later
        jobs = (await own.stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items))).jobs
        await own.stub.CancelJob(job_pb2.CancelJobRequest(id=jobs[3].id))  # the earliest, no longer pending
        async with own.app.store.transaction() as tx:
            assert await tx.next_due(own.clock()) == jobs[1].run_after_time.ToDatetime(tzinfo=UTC)


# -- the create fast path against a breaker opening ----------------------------------------------


@pytest.mark.postgres
async def test_a_redrive_racing_a_first_breaker_opening_ends_paused(postgres_url: str) -> None:
    """The redrive has made a failed job pending and not committed when the first state ever
    stored for its dependency (no breaker row to share-lock) opens the breaker: the opening
    waits for the redrive's hold-key lock, then pauses the job."""
    async with running_jobs(postgres_url) as own:
        dependency = unique()
        job = (await create_jobs(own.stub, [dependency], 1, max_attempts=1))[0]
        await own.stub.ClaimJobs(claim_request("w1", [dependency], 1))
        await own.stub.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="bad input"))
        selector = RedriveSelector.validated(ids=[job.id], status=None, job_type="", campaign_id="")
        async with own.app.store.transaction() as tx:
            await tx.lock_breaker_states()
            assert await tx.redrive(selector, own.clock()) == [job.id]
            opening = asyncio.create_task(transition(own, dependency, BreakerState.CLOSED, BreakerState.OPEN))
            await still_waiting(opening)
        await asyncio.wait_for(opening, 5)
        assert (await get(own, job.id)).status == S.JOB_STATUS_PAUSED


async def test_hold_keys_are_locked_for_more_jobs_than_a_statement_has_parameters(postgres_url: str) -> None:
    """A redrive by status may name any number of jobs: their ids go as one array parameter,
    not one parameter each (the protocol allows 32,767)."""
    async with running_jobs(postgres_url) as own:
        job = (await create_jobs(own.stub, [unique()], 1, campaign_id=str(uuid.uuid4())))[0]
        async with own.app.store.transaction() as tx:
            await tx.lock_hold_keys_of([job.id, *(str(uuid.uuid4()) for _ in range(40_000))])
            locked = await tx.connection.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"))
        assert locked == 2  # the job's dependency and campaign


async def test_a_create_racing_a_breaker_opening_ends_paused(postgres_url: str) -> None:
    """The create has checked the breaker (closed) and not committed when the opening arrives:
    the opening waits for the create's hold-key lock, then pauses the new job. (SQLite
    serialises whole transactions: there is no interleaving to test there.)"""
    async with running_jobs(postgres_url) as own:
        dependency, job_id = unique(), str(uuid.uuid4())
        new = NewJob.validated(request_id="", campaign_id="", job_type="race", dependencies=[dependency], payload={},
                               max_attempts=0, max_payload_bytes=100)
        async with own.app.store.transaction() as tx:
            await tx.lock_hold_keys([hold_key(HoldKind.BREAKER, dependency)])
            inserted, held = await tx.insert_jobs([(job_id, new)], own.clock(), None)
            assert inserted == {job_id} and not held
            opening = asyncio.create_task(transition(own, dependency, BreakerState.CLOSED, BreakerState.OPEN))
            await still_waiting(opening)
        await asyncio.wait_for(opening, 5)
        assert (await get(own, job_id)).status == S.JOB_STATUS_PAUSED
