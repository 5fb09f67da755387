"""Every JobService RPC through a real gRPC channel to an in-process server, on PostgreSQL and on
SQLite: good input, bad input, leases, retries, holds and the queue status."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, timedelta

import grpc
import pytest
from job.v1 import job_pb2
from sqlalchemy import select

from job_svc.tables import breaker_outbox
from services.watch import BREAKER_STATE, BreakerState, Transition
from tests.support.job import (
    RunningJobs,
    claim_request,
    create_jobs,
    create_request,
    database_of,
    expect_error,
    running_jobs,
    unique,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
S = job_pb2  # status and hold-kind constants


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningJobs]:
    async with database_of(request.param, tmp_path_factory) as url:
        async with running_jobs(url) as running:
            yield running


_revision = iter(range(1, 1_000_000))


async def open_breaker(svc: RunningJobs, dependency: str) -> None:
    await svc.app.mirror.apply_transition(Transition(next(_revision), dependency, BreakerState.CLOSED, BreakerState.OPEN, 1, "test"))


async def outbox(svc: RunningJobs, dependency: str) -> list[tuple[str, bool]]:
    async with svc.app.engine.connect() as connection:
        rows = await connection.execute(
            select(breaker_outbox.c.dependency, breaker_outbox.c.success).where(breaker_outbox.c.dependency == dependency).order_by(breaker_outbox.c.id)
        )
        return [(r.dependency, r.success) for r in rows]


async def claim_one(svc: RunningJobs, dependency: str, worker: str = "w1", lease_s: float | None = None) -> job_pb2.Job:
    jobs = (await svc.stub.ClaimJobs(claim_request(worker, [dependency], 1, lease_s))).jobs
    assert len(jobs) == 1
    return jobs[0]


async def get(svc: RunningJobs, job_id: str) -> job_pb2.Job:
    return (await svc.stub.GetJob(job_pb2.GetJobRequest(id=job_id))).job


# -- CreateJob / GetJob --------------------------------------------------------------------------


async def test_create_job_returns_a_pending_job_with_every_field(svc: RunningJobs) -> None:
    dependency, campaign = unique(), str(uuid.uuid4())
    request = create_request([dependency, "apollo"], campaign_id=campaign, max_attempts=5)
    request.payload.update({"lead": "ada@example.com", "n": 2})
    job = (await svc.stub.CreateJob(request)).job
    assert uuid.UUID(job.id) and job.status == S.JOB_STATUS_PENDING
    assert (job.campaign_id, job.job_type, list(job.dependencies)) == (campaign, "enrich", sorted([dependency, "apollo"]))
    assert (job.attempts, job.max_attempts, job.lease_owner, list(job.holds)) == (0, 5, "", [])
    assert dict(job.payload) == {"lead": "ada@example.com", "n": 2}
    assert job.create_time.ToDatetime(tzinfo=UTC) <= svc.clock() and not job.HasField("lease_expire_time")
    assert await get(svc, job.id) == job


async def test_max_attempts_defaults_to_three(svc: RunningJobs) -> None:
    assert (await create_jobs(svc.stub, [unique()], 1))[0].max_attempts == 3


async def test_a_repeated_request_id_returns_the_first_job_even_when_racing(svc: RunningJobs) -> None:
    request = create_request([unique()], request_id=f"req-{uuid.uuid4()}")
    responses = await asyncio.gather(*(svc.stub.CreateJob(request) for _ in range(6)))
    assert len({r.job.id for r in responses}) == 1
    listed = await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=request.dependencies[0]))
    assert [j.id for j in listed.jobs] == [responses[0].job.id]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"dependencies": []}, "at least one dependency"),
        ({"dependencies": ["Not Valid"]}, "malformed"),
        ({"job_type": ""}, "job_type is required"),
        ({"max_attempts": 101}, "max_attempts"),
        ({"campaign_id": "campaign-1"}, "campaign_id must be a UUID"),
        ({"request_id": "r" * 129}, "request_id"),
    ],
)
async def test_create_job_refuses_malformed_fields(svc: RunningJobs, fields: dict, message: str) -> None:
    values: dict = {"dependencies": ["openai"], "job_type": "enrich", **fields}
    await expect_error(lambda: svc.stub.CreateJob(job_pb2.CreateJobRequest(**values)), INVALID, message)


async def test_create_job_refuses_a_payload_over_the_cap(svc: RunningJobs) -> None:
    request = create_request(["openai"])
    request.payload.update({"text": "x" * 2000})
    await expect_error(lambda: svc.stub.CreateJob(request), INVALID, "payload must be at most 1024 bytes")


async def test_get_job_unknown_is_not_found_and_malformed_is_invalid(svc: RunningJobs) -> None:
    await expect_error(lambda: svc.stub.GetJob(job_pb2.GetJobRequest(id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND, "does not exist")
    await expect_error(lambda: svc.stub.GetJob(job_pb2.GetJobRequest(id="nope")), INVALID, "id must be a UUID")


# -- ListJobs ------------------------------------------------------------------------------------


async def test_list_jobs_pages_oldest_first_with_filters(svc: RunningJobs) -> None:
    campaign, dependency = str(uuid.uuid4()), unique()
    created = await create_jobs(svc.stub, [dependency], 5, campaign_id=campaign)
    seen, token, pages = [], "", 0
    while True:
        page = await svc.stub.ListJobs(job_pb2.ListJobsRequest(page_size=2, page_token=token, campaign_id=campaign))
        seen += [j.id for j in page.jobs]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == [j.id for j in created] and pages == 3
    await claim_one(svc, dependency)
    processing = await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, status=S.JOB_STATUS_PROCESSING))
    assert [j.id for j in processing.jobs] == [created[0].id]
    pending = await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, status=S.JOB_STATUS_PENDING))
    assert [j.id for j in pending.jobs] == [j.id for j in created[1:]]


async def test_list_jobs_refuses_bad_tokens_filters_and_sizes(svc: RunningJobs) -> None:
    campaign = str(uuid.uuid4())
    await create_jobs(svc.stub, [unique()], 2, campaign_id=campaign)
    token = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(page_size=1, campaign_id=campaign))).next_page_token
    assert token
    other_filter = job_pb2.ListJobsRequest(page_size=1, page_token=token, status=S.JOB_STATUS_PENDING, campaign_id=campaign)
    await expect_error(lambda: svc.stub.ListJobs(other_filter), INVALID, "filters changed")
    await expect_error(lambda: svc.stub.ListJobs(job_pb2.ListJobsRequest(page_token="garbage!")), INVALID, "page_token")
    await expect_error(lambda: svc.stub.ListJobs(job_pb2.ListJobsRequest(page_size=-1)), INVALID, "page_size")
    await expect_error(lambda: svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency="UPPER")), INVALID, "dependency")
    await expect_error(lambda: svc.stub.ListJobs(job_pb2.ListJobsRequest(status=42)), INVALID, "status")


# -- ClaimJobs -----------------------------------------------------------------------------------


async def test_claim_leases_the_oldest_runnable_jobs(svc: RunningJobs) -> None:
    dependency = unique()
    created = await create_jobs(svc.stub, [dependency], 3)
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 2, lease_s=60))).jobs
    assert [j.id for j in claimed] == [j.id for j in created[:2]]
    for job in claimed:
        assert (job.status, job.lease_owner) == (S.JOB_STATUS_PROCESSING, "w1")
        lease_end = job.lease_expire_time.ToDatetime(tzinfo=UTC)
        assert svc.clock() + timedelta(seconds=55) < lease_end <= svc.clock() + timedelta(seconds=60)
    assert [j.id for j in (await svc.stub.ClaimJobs(claim_request("w2", [dependency], 10))).jobs] == [created[2].id]
    assert not (await svc.stub.ClaimJobs(claim_request("w2", [dependency], 10))).jobs


async def test_claim_takes_only_jobs_whose_dependencies_are_all_listed_and_of_the_type(svc: RunningJobs) -> None:
    a, b = unique(), unique()
    both = (await create_jobs(svc.stub, [a, b], 1))[0]
    only_a = (await create_jobs(svc.stub, [a], 1, job_type="verify"))[0]
    assert [j.id for j in (await svc.stub.ClaimJobs(claim_request("w", [a], 10))).jobs] == [only_a.id]
    typed = job_pb2.ClaimJobsRequest(worker_id="w", dependencies=[a, b], max_jobs=10, job_type="other")
    assert not (await svc.stub.ClaimJobs(typed)).jobs
    assert [j.id for j in (await svc.stub.ClaimJobs(claim_request("w", [a, b], 10))).jobs] == [both.id]


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"worker_id": "", "max_jobs": 1}, "worker_id is required"),
        ({"worker_id": "w", "max_jobs": 0}, "max_jobs"),
        ({"worker_id": "w", "max_jobs": 1001}, "max_jobs"),
        ({"worker_id": "w", "max_jobs": 1, "dependencies": ["Bad"]}, "malformed"),
    ],
)
async def test_claim_refuses_malformed_requests(svc: RunningJobs, request_fields: dict, message: str) -> None:
    await expect_error(lambda: svc.stub.ClaimJobs(job_pb2.ClaimJobsRequest(**request_fields)), INVALID, message)


@pytest.mark.parametrize("lease_s", [0.5, 3601])
async def test_claim_refuses_leases_outside_one_second_to_one_hour(svc: RunningJobs, lease_s: float) -> None:
    await expect_error(lambda: svc.stub.ClaimJobs(claim_request("w", ["openai"], 1, lease_s)), INVALID, "lease_duration")


async def test_an_expired_lease_returns_the_job_to_the_queue(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await claim_one(svc, dependency, "dead-worker", lease_s=5)
    assert not (await svc.stub.ClaimJobs(claim_request("w2", [dependency], 1))).jobs
    svc.clock.advance(6)
    reclaimed = await claim_one(svc, dependency, "w2")
    assert (reclaimed.id, reclaimed.lease_owner, reclaimed.attempts) == (job.id, "w2", 0)
    complete = job_pb2.CompleteJobRequest(id=job.id, worker_id="dead-worker")
    await expect_error(lambda: svc.stub.CompleteJob(complete), PRECONDITION, "another worker")


async def test_the_sweeper_requeues_expired_leases_without_a_claim(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await claim_one(svc, dependency, "dead-worker", lease_s=1)
    svc.clock.advance(2)
    assert await svc.app.jobs.requeue_expired() >= 1
    requeued = await get(svc, job.id)
    assert (requeued.status, requeued.lease_owner, requeued.attempts) == (S.JOB_STATUS_PENDING, "", 0)
    assert "dead-worker" in requeued.last_error


# -- CompleteJob / FailJob -----------------------------------------------------------------------


async def test_complete_by_the_lease_owner_records_a_success_per_dependency(svc: RunningJobs) -> None:
    a, b = unique(), unique()
    job = (await create_jobs(svc.stub, [a, b], 1))[0]
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [a, b], 1))).jobs[0]
    wrong = job_pb2.CompleteJobRequest(id=job.id, worker_id="w2")
    await expect_error(lambda: svc.stub.CompleteJob(wrong), PRECONDITION, "another worker")
    done = (await svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=claimed.id, worker_id="w1"))).job
    assert (done.status, done.lease_owner) == (S.JOB_STATUS_COMPLETED, "")
    assert await outbox(svc, a) == [(a, True)] and await outbox(svc, b) == [(b, True)]
    again = job_pb2.CompleteJobRequest(id=job.id, worker_id="w1")
    await expect_error(lambda: svc.stub.CompleteJob(again), PRECONDITION, "is completed, not processing")


async def test_complete_and_fail_check_their_input(svc: RunningJobs) -> None:
    pending = (await create_jobs(svc.stub, [unique()], 1))[0]
    unknown = str(uuid.uuid4())
    await expect_error(lambda: svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=unknown, worker_id="w")), grpc.StatusCode.NOT_FOUND)
    await expect_error(lambda: svc.stub.FailJob(job_pb2.FailJobRequest(id=unknown, worker_id="w")), grpc.StatusCode.NOT_FOUND)
    await expect_error(lambda: svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=pending.id, worker_id="")), INVALID, "worker_id")
    await expect_error(lambda: svc.stub.FailJob(job_pb2.FailJobRequest(id="x", worker_id="w")), INVALID, "UUID")
    await expect_error(lambda: svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=pending.id, worker_id="w")), PRECONDITION, "is pending")


async def test_failures_retry_with_exponential_backoff_then_fail(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1, max_attempts=3))[0]
    for attempt, delay_s in ((1, 10), (2, 20)):
        await claim_one(svc, dependency)
        before = svc.clock()
        failed = (await svc.stub.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error=f"bad input {attempt}"))).job
        assert (failed.status, failed.attempts, failed.last_error) == (S.JOB_STATUS_PENDING, attempt, f"bad input {attempt}")
        run_after = failed.run_after_time.ToDatetime(tzinfo=UTC)
        assert before + timedelta(seconds=delay_s) <= run_after <= svc.clock() + timedelta(seconds=delay_s)
        assert not (await svc.stub.ClaimJobs(claim_request("w1", [dependency], 1))).jobs  # not due yet
        svc.clock.advance(delay_s + 1)
    await claim_one(svc, dependency)
    final = (await svc.stub.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="still bad"))).job
    assert (final.status, final.attempts) == (S.JOB_STATUS_FAILED, 3)
    assert await outbox(svc, dependency) == []  # the job's own fault says nothing about the provider


async def test_a_providers_failure_spends_no_attempt_and_is_recorded_with_its_breaker(svc: RunningJobs) -> None:
    a, b = unique(), unique()
    job = (await create_jobs(svc.stub, [a, b], 1, max_attempts=1))[0]
    (await svc.stub.ClaimJobs(claim_request("w1", [a, b], 1)))
    failed = (await svc.stub.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="503", failed_dependency=a))).job
    assert (failed.status, failed.attempts) == (S.JOB_STATUS_PENDING, 0)
    assert failed.run_after_time.ToDatetime(tzinfo=UTC) > svc.clock()  # backoff, breaker not open
    assert await outbox(svc, a) == [(a, False)] and await outbox(svc, b) == []


async def test_a_providers_failure_while_its_breaker_is_open_pauses_the_job(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1, max_attempts=1))[0]
    await claim_one(svc, dependency)
    await open_breaker(svc, dependency)  # the processing job is left to finish
    assert (await get(svc, job.id)).status == S.JOB_STATUS_PROCESSING
    failed = (await svc.stub.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="503", failed_dependency=dependency))).job
    assert (failed.status, failed.attempts) == (S.JOB_STATUS_PAUSED, 0)
    assert [(h.kind, h.dependency) for h in failed.holds] == [(S.HOLD_KIND_BREAKER, dependency)]
    assert dependency in failed.pause_reason


async def test_fail_refuses_a_failed_dependency_the_job_does_not_call(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await claim_one(svc, dependency)
    request = job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="x", failed_dependency="perplexity")
    await expect_error(lambda: svc.stub.FailJob(request), INVALID, "not a dependency of job")
    request.failed_dependency = "Perplexity!"
    await expect_error(lambda: svc.stub.FailJob(request), INVALID, "failed_dependency")
    assert (await get(svc, job.id)).status == S.JOB_STATUS_PROCESSING


# -- CancelJob -----------------------------------------------------------------------------------


async def test_cancel_pending_paused_and_processing_jobs_but_not_finished_ones(svc: RunningJobs) -> None:
    busy, held = unique(), unique()
    processing = (await create_jobs(svc.stub, [busy], 1))[0]
    await claim_one(svc, busy)
    pending = (await create_jobs(svc.stub, [busy], 1))[0]
    paused = (await create_jobs(svc.stub, [held], 1))[0]
    await svc.stub.PauseJobs(job_pb2.PauseJobsRequest(dependency=held, reason="quota"))
    assert (await get(svc, paused.id)).status == S.JOB_STATUS_PAUSED
    for job in (pending, processing, paused):
        cancelled = (await svc.stub.CancelJob(job_pb2.CancelJobRequest(id=job.id))).job
        assert (cancelled.status, cancelled.lease_owner, list(cancelled.holds)) == (S.JOB_STATUS_CANCELLED, "", [])
    details = await expect_error(lambda: svc.stub.CancelJob(job_pb2.CancelJobRequest(id=pending.id)), PRECONDITION)
    assert "already cancelled" in details
    late = job_pb2.CompleteJobRequest(id=processing.id, worker_id="w1")
    await expect_error(lambda: svc.stub.CompleteJob(late), PRECONDITION, "is cancelled")
    await expect_error(lambda: svc.stub.CancelJob(job_pb2.CancelJobRequest(id=str(uuid.uuid4()))), grpc.StatusCode.NOT_FOUND)
    await expect_error(lambda: svc.stub.CancelJob(job_pb2.CancelJobRequest(id="")), INVALID, "id is required")


# -- PauseJobs / ResumeJobs ----------------------------------------------------------------------


async def test_pausing_a_campaign_holds_its_jobs_idempotently_and_resuming_releases_them(svc: RunningJobs) -> None:
    campaign, other, dependency = str(uuid.uuid4()), str(uuid.uuid4()), unique()
    mine = await create_jobs(svc.stub, [dependency], 3, campaign_id=campaign)
    theirs = (await create_jobs(svc.stub, [dependency], 1, campaign_id=other))[0]
    await claim_one(svc, dependency)  # mine[0] is processing
    pause = job_pb2.PauseJobsRequest(campaign_id=campaign, reason="paused by user")
    assert (await svc.stub.PauseJobs(pause)).affected_count == 3
    before = [await get(svc, j.id) for j in mine]
    assert [j.status for j in before] == [S.JOB_STATUS_PROCESSING, S.JOB_STATUS_PAUSED, S.JOB_STATUS_PAUSED]
    assert all([(h.kind, h.reason) for h in j.holds] == [(S.HOLD_KIND_CAMPAIGN, "paused by user")] for j in before)
    assert (await svc.stub.PauseJobs(pause)).affected_count == 3  # repeating changes nothing
    assert [await get(svc, j.id) for j in mine] == before
    assert (await get(svc, theirs.id)).status == S.JOB_STATUS_PENDING
    late = (await create_jobs(svc.stub, [dependency], 1, campaign_id=campaign))[0]
    assert late.status == S.JOB_STATUS_PAUSED  # the pause stands for jobs created later
    # The processing job keeps its hold: when it comes back to the queue it waits.
    failed = (await svc.stub.FailJob(job_pb2.FailJobRequest(id=mine[0].id, worker_id="w1", error="x"))).job
    assert failed.status == S.JOB_STATUS_PAUSED
    resumed = await svc.stub.ResumeJobs(job_pb2.ResumeJobsRequest(campaign_id=campaign))
    assert (resumed.affected_count, resumed.resumed_count) == (4, 4)
    assert {(await get(svc, j.id)).status for j in [*mine, late]} == {S.JOB_STATUS_PENDING}
    again = await svc.stub.ResumeJobs(job_pb2.ResumeJobsRequest(campaign_id=campaign))
    assert (again.affected_count, again.resumed_count) == (0, 0)


async def test_a_job_stays_paused_while_another_hold_remains(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.PauseJobs(job_pb2.PauseJobsRequest(dependency=dependency, reason="maintenance"))
    await open_breaker(svc, dependency)
    held = await get(svc, job.id)
    assert sorted(h.kind for h in held.holds) == [S.HOLD_KIND_BREAKER, S.HOLD_KIND_MANUAL]
    resumed = await svc.stub.ResumeJobs(job_pb2.ResumeJobsRequest(dependency=dependency))
    assert (resumed.affected_count, resumed.resumed_count) == (1, 0)
    still = await get(svc, job.id)
    assert still.status == S.JOB_STATUS_PAUSED and [h.kind for h in still.holds] == [S.HOLD_KIND_BREAKER]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({}, "exactly one"),
        ({"campaign_id": str(uuid.UUID(int=1)), "dependency": "openai"}, "exactly one"),
        ({"campaign_id": "c-1"}, "campaign_id must be a UUID"),
        ({"dependency": "Open AI"}, "malformed"),
    ],
)
async def test_pause_and_resume_need_exactly_one_valid_selector(svc: RunningJobs, fields: dict, message: str) -> None:
    await expect_error(lambda: svc.stub.PauseJobs(job_pb2.PauseJobsRequest(**fields)), INVALID, message)
    await expect_error(lambda: svc.stub.ResumeJobs(job_pb2.ResumeJobsRequest(**fields)), INVALID, message)


async def test_pause_refuses_an_overlong_reason(svc: RunningJobs) -> None:
    request = job_pb2.PauseJobsRequest(dependency="openai", reason="r" * 501)
    await expect_error(lambda: svc.stub.PauseJobs(request), INVALID, "reason must be at most 500")


# -- GetQueueStatus ------------------------------------------------------------------------------


async def test_queue_status_counts_per_status_and_dependency_and_names_blocked_ones(svc: RunningJobs) -> None:
    blocked, free = unique(), unique()
    await create_jobs(svc.stub, [blocked], 2)
    await create_jobs(svc.stub, [free], 3)
    await claim_one(svc, free)
    await open_breaker(svc, blocked)
    status = await svc.stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    per_dependency = {d.dependency: d for d in status.dependencies}
    assert dict(per_dependency[blocked].counts_by_status)["paused"] == 2
    assert per_dependency[blocked].breaker_state == BREAKER_STATE.to_proto(BreakerState.OPEN)
    assert dict(per_dependency[free].counts_by_status) == {
        "pending": 2, "processing": 1, "paused": 0, "completed": 0, "failed": 0, "cancelled": 0
    }
    assert blocked in status.blocked_dependencies and free not in status.blocked_dependencies
    assert status.counts_by_status["paused"] >= 2 and status.counts_by_status["processing"] >= 1
    assert status.applied_revision >= 1
    # No breaker_svc in this test: never heard from, so stale, with no contact time.
    assert status.breaker_state_stale and not status.HasField("breaker_contact_time")


async def test_queue_status_counts_finished_jobs_per_dependency_too(svc: RunningJobs) -> None:
    a, b = unique(), unique()
    both = (await create_jobs(svc.stub, [a, b], 1))[0]
    claimed = (await svc.stub.ClaimJobs(claim_request("w1", [a, b], 1))).jobs[0]
    await svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=claimed.id, worker_id="w1"))
    await create_jobs(svc.stub, [a], 1, max_attempts=1)
    await svc.stub.FailJob(job_pb2.FailJobRequest(id=(await claim_one(svc, a)).id, worker_id="w1", error="no"))
    cancelled = (await create_jobs(svc.stub, [a], 1))[0]
    await svc.stub.CancelJob(job_pb2.CancelJobRequest(id=cancelled.id))
    await create_jobs(svc.stub, [a, b], 1)
    status = await svc.stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    per_dependency = {d.dependency: dict(d.counts_by_status) for d in status.dependencies}
    assert claimed.id == both.id
    assert per_dependency[a] == {"pending": 1, "processing": 0, "paused": 0, "completed": 1, "failed": 1, "cancelled": 1}
    assert per_dependency[b] == {"pending": 1, "processing": 0, "paused": 0, "completed": 1, "failed": 0, "cancelled": 0}


async def test_queue_status_counts_paused_jobs_per_hold_kind_once_per_job(svc: RunningJobs) -> None:
    both, breaker_only = unique(), unique()
    before = dict((await svc.stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())).paused_jobs_by_hold)
    await create_jobs(svc.stub, [both], 2)
    await create_jobs(svc.stub, [breaker_only], 3)
    await svc.stub.PauseJobs(job_pb2.PauseJobsRequest(dependency=both, reason="maintenance"))
    await open_breaker(svc, both)
    await open_breaker(svc, breaker_only)
    after = dict((await svc.stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())).paused_jobs_by_hold)
    assert after.get("manual", 0) - before.get("manual", 0) == 2
    assert after.get("breaker", 0) - before.get("breaker", 0) == 5
