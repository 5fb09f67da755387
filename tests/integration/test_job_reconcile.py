"""Breaker reconciliation through the mirror (apply_snapshot / apply_transition), on PostgreSQL
and SQLite: opening pauses, half-open releases only the trial permits, closing resumes the rest;
replays change nothing and a reset snapshot converges."""

import itertools
import time
from collections.abc import AsyncIterator

import pytest
from job.v1 import job_pb2
from sqlalchemy import func, select

from job_svc.domain import HoldKind, JobStatus
from job_svc.tables import job_holds, jobs
from services.watch import BreakerState, BreakerView, Snapshot, Transition
from tests.support.databases import fresh_postgres_database
from tests.support.job import (
    RunningJobs,
    bulk_insert_jobs,
    claim_request,
    create_jobs,
    database_of,
    running_jobs,
    status_counts,
    unique,
)

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN
FORCED_OPEN, FORCED_CLOSED = BreakerState.FORCED_OPEN, BreakerState.FORCED_CLOSED
S = job_pb2


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
async def svc(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningJobs]:
    async with database_of(request.param, tmp_path_factory) as url:
        async with running_jobs(url) as running:
            yield running


_revisions = itertools.count(1)


async def transition(svc: RunningJobs, dependency: str, from_state: BreakerState, to_state: BreakerState, permits: int = 2) -> Transition:
    event = Transition(next(_revisions), dependency, from_state, to_state, permits, "test")
    await svc.app.mirror.apply_transition(event)
    return event


async def queue_picture(svc: RunningJobs, dependency: str) -> list[tuple]:
    """Every job of a dependency with its status, holds and update time: what must not change."""
    listed = await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, page_size=1000))
    return [(j.id, j.status, j.attempts, j.update_time.ToNanoseconds(), tuple((h.kind, h.dependency, h.revision) for h in j.holds)) for j in listed.jobs]


async def statuses(svc: RunningJobs, dependency: str) -> list[int]:
    return [j.status for j in (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=dependency, page_size=1000))).jobs]


async def test_opening_pauses_queued_jobs_of_that_dependency_only(svc: RunningJobs) -> None:
    down, up = unique(), unique()
    processing = (await create_jobs(svc.stub, [down], 1))[0]
    await svc.stub.ClaimJobs(claim_request("w", [down], 1))
    await create_jobs(svc.stub, [down], 3)
    await create_jobs(svc.stub, [down, up], 1)
    await create_jobs(svc.stub, [up], 2)
    opened = await transition(svc, down, CLOSED, OPEN)
    assert await statuses(svc, down) == [S.JOB_STATUS_PROCESSING] + [S.JOB_STATUS_PAUSED] * 4
    assert await statuses(svc, up) == [S.JOB_STATUS_PAUSED, S.JOB_STATUS_PENDING, S.JOB_STATUS_PENDING]
    paused = (await svc.stub.ListJobs(job_pb2.ListJobsRequest(dependency=down, status=S.JOB_STATUS_PAUSED))).jobs
    assert {(h.kind, h.dependency, h.revision) for j in paused for h in j.holds} == {(S.HOLD_KIND_BREAKER, down, opened.revision)}
    assert (await svc.stub.GetJob(job_pb2.GetJobRequest(id=processing.id))).job.holds == []
    assert not (await svc.stub.ClaimJobs(claim_request("w", [down], 10))).jobs
    assert len((await svc.stub.ClaimJobs(claim_request("w", [up], 10))).jobs) == 2


async def test_half_open_releases_only_the_oldest_permitted_jobs_and_closing_the_rest(svc: RunningJobs) -> None:
    dependency, other = unique(), unique()
    created = await create_jobs(svc.stub, [dependency], 5)
    also_other = (await create_jobs(svc.stub, [dependency, other], 1))[0]
    await transition(svc, dependency, CLOSED, OPEN)
    await transition(svc, other, CLOSED, FORCED_OPEN)
    await transition(svc, dependency, OPEN, HALF_OPEN, permits=2)
    assert await statuses(svc, dependency) == [S.JOB_STATUS_PENDING] * 2 + [S.JOB_STATUS_PAUSED] * 4
    # A job arriving during the trial waits for CLOSED: the provider sees only the trial.
    during_trial = (await create_jobs(svc.stub, [dependency], 1))[0]
    assert during_trial.status == S.JOB_STATUS_PAUSED
    claimed = (await svc.stub.ClaimJobs(claim_request("w", [dependency, other], 10))).jobs
    assert [j.id for j in claimed] == [j.id for j in created[:2]]
    await transition(svc, dependency, HALF_OPEN, CLOSED)
    assert await statuses(svc, dependency) == [S.JOB_STATUS_PROCESSING] * 2 + [S.JOB_STATUS_PENDING] * 3 + [S.JOB_STATUS_PAUSED] + [S.JOB_STATUS_PENDING]
    still = (await svc.stub.GetJob(job_pb2.GetJobRequest(id=also_other.id))).job
    assert [(h.kind, h.dependency) for h in still.holds] == [(S.HOLD_KIND_BREAKER, other)]
    await transition(svc, other, FORCED_OPEN, FORCED_CLOSED)
    assert (await svc.stub.GetJob(job_pb2.GetJobRequest(id=also_other.id))).job.status == S.JOB_STATUS_PENDING


async def test_jobs_needing_two_providers_in_trial_together_are_let_into_both_trials(svc: RunningJobs) -> None:
    alpha, beta = unique(), unique()
    both = await create_jobs(svc.stub, [alpha, beta], 4)
    await transition(svc, alpha, CLOSED, OPEN)
    await transition(svc, beta, CLOSED, OPEN)
    await transition(svc, alpha, OPEN, HALF_OPEN, permits=2)
    assert await statuses(svc, alpha) == [S.JOB_STATUS_PAUSED] * 4  # beta is still open
    await transition(svc, beta, OPEN, HALF_OPEN, permits=2)
    # Both in trial: the oldest jobs go to both trials at once, else neither would get a call.
    assert await statuses(svc, alpha) == [S.JOB_STATUS_PENDING] * 2 + [S.JOB_STATUS_PAUSED] * 2
    claimed = (await svc.stub.ClaimJobs(claim_request("w", [alpha, beta], 10))).jobs
    assert [j.id for j in claimed] == [j.id for j in both[:2]]
    still = (await svc.stub.GetJob(job_pb2.GetJobRequest(id=both[2].id))).job
    assert sorted(h.dependency for h in still.holds) == sorted([alpha, beta])


async def test_a_job_created_while_its_breaker_is_open_is_created_paused(svc: RunningJobs) -> None:
    dependency = unique()
    await transition(svc, dependency, CLOSED, FORCED_OPEN)
    job = (await create_jobs(svc.stub, [dependency, "apollo"], 1))[0]
    assert job.status == S.JOB_STATUS_PAUSED
    assert [(h.kind, h.dependency, h.reason) for h in job.holds] == [(S.HOLD_KIND_BREAKER, dependency, "forced_open")]


async def test_an_expired_lease_of_a_blocked_dependency_returns_paused(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.ClaimJobs(claim_request("dead", [dependency], 1, lease_s=1))
    await transition(svc, dependency, CLOSED, OPEN)
    svc.clock.advance(2)
    await svc.app.jobs.requeue_expired()
    requeued = (await svc.stub.GetJob(job_pb2.GetJobRequest(id=job.id))).job
    assert (requeued.status, requeued.attempts, [h.kind for h in requeued.holds]) == (S.JOB_STATUS_PAUSED, 0, [S.HOLD_KIND_BREAKER])


async def test_replaying_events_changes_nothing(svc: RunningJobs) -> None:
    dependency = unique()
    await create_jobs(svc.stub, [dependency], 4)
    opened = await transition(svc, dependency, CLOSED, OPEN)
    half = await transition(svc, dependency, OPEN, HALF_OPEN, permits=1)
    picture = await queue_picture(svc, dependency)
    svc.clock.advance(1)  # a change would show in update times
    for event in (opened, half, half):
        await svc.app.mirror.apply_transition(event)  # delivered again after a reconnect
    assert await queue_picture(svc, dependency) == picture
    # The reconciliation itself is idempotent too, should it ever run twice.
    view = BreakerView(dependency, HALF_OPEN, half.revision, 1)
    for _ in range(2):
        async with svc.app.engine.begin() as connection:
            await svc.app.jobs.reconcile(connection, view, view)
    assert [p[1] for p in await queue_picture(svc, dependency)] == [p[1] for p in picture]


async def test_manual_and_campaign_holds_survive_breaker_recovery(svc: RunningJobs) -> None:
    dependency = unique()
    job = (await create_jobs(svc.stub, [dependency], 1))[0]
    await svc.stub.PauseJobs(job_pb2.PauseJobsRequest(dependency=dependency, reason="ops"))
    await transition(svc, dependency, CLOSED, OPEN)
    await transition(svc, dependency, OPEN, HALF_OPEN, permits=5)
    await transition(svc, dependency, HALF_OPEN, CLOSED)
    after = (await svc.stub.GetJob(job_pb2.GetJobRequest(id=job.id))).job
    assert after.status == S.JOB_STATUS_PAUSED and [h.kind for h in after.holds] == [S.HOLD_KIND_MANUAL]


async def converge(url: str, first: list[Snapshot | Transition], final: Snapshot) -> dict[str, list[int]]:
    """A fresh service that saw `first` and then the (reset) snapshot `final`."""
    async with running_jobs(url) as svc:
        for dependency in ("alpha", "beta", "gamma"):
            await create_jobs(svc.stub, [dependency], 3)
        for event in first:
            if isinstance(event, Snapshot):
                await svc.app.mirror.apply_snapshot(event)
            else:
                await svc.app.mirror.apply_transition(event)
        await svc.app.mirror.apply_snapshot(final)
        return {d: await statuses(svc, d) for d in ("alpha", "beta", "gamma")}


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
async def test_a_reset_snapshot_converges_to_the_same_jobs_as_a_clean_start(backend: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    final = Snapshot(
        revision=40,
        breakers=(BreakerView("beta", OPEN, 39, 2), BreakerView("gamma", HALF_OPEN, 40, 1)),
        reset=True,
    )
    history = [
        Snapshot(10, (BreakerView("alpha", OPEN, 9, 2), BreakerView("gamma", FORCED_OPEN, 10, 1)), False),
        Transition(11, "beta", CLOSED, OPEN, 2, "x"),
        Transition(12, "beta", OPEN, HALF_OPEN, 2, "x"),
    ]
    async with database_of(backend, tmp_path_factory) as url:
        after_history = await converge(url, history, final)
    async with database_of(backend, tmp_path_factory) as url:
        clean = await converge(url, [], final)
    assert after_history == clean == {
        "alpha": [S.JOB_STATUS_PENDING] * 3,  # absent from the reset snapshot: closed
        "beta": [S.JOB_STATUS_PAUSED] * 3,
        "gamma": [S.JOB_STATUS_PENDING] + [S.JOB_STATUS_PAUSED] * 2,  # one trial permit
    }


@pytest.mark.postgres
async def test_twenty_thousand_jobs_pause_and_resume_set_based() -> None:
    async with fresh_postgres_database() as url:
        async with running_jobs(url) as svc:
            dependency = unique("bulk")
            await bulk_insert_jobs(svc.app, [dependency], 20_000)
            started = time.perf_counter()
            await transition(svc, dependency, CLOSED, OPEN)
            pause_s = time.perf_counter() - started
            assert await status_counts(svc.app, dependency) == {JobStatus.PAUSED: 20_000}
            async with svc.app.engine.connect() as connection:
                holds = await connection.scalar(
                    select(func.count()).select_from(job_holds).where(job_holds.c.kind == HoldKind.BREAKER, job_holds.c.dependency == dependency)
                )
            assert holds == 20_000
            await transition(svc, dependency, OPEN, HALF_OPEN, permits=3)
            assert await status_counts(svc.app, dependency) == {JobStatus.PAUSED: 19_997, JobStatus.PENDING: 3}
            started = time.perf_counter()
            await transition(svc, dependency, HALF_OPEN, CLOSED)
            resume_s = time.perf_counter() - started
            assert await status_counts(svc.app, dependency) == {JobStatus.PENDING: 20_000}
            print(f"\n20,000 jobs: open (hold + pause) {pause_s * 1000:.0f} ms, close (release) {resume_s * 1000:.0f} ms")
            async with svc.app.engine.connect() as connection:
                assert await connection.scalar(select(func.count()).select_from(jobs)) == 20_000
