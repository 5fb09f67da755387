"""The lease statements of job_svc's store: claim, renew, finish and expiry, set-based.

A lease is held by `lease_owner` until `lease_expires_at`. Every statement that ends or extends
one says "if still held by this worker" in its WHERE clause (River's batch completer), so a
worker whose lease expired or moved changes nothing, however late its call arrives.

`LeaseStatements` is the part of `store.JobTx` that deals with leases.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, case, cast, delete, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from job_svc import statements
from job_svc.domain import ClaimRequest, FailurePlan, Finish, Job, JobStatus, poison_error
from job_svc.holds import chunks
from job_svc.tables import JOB_STATUS, breaker_outbox, job_holds, jobs, status_literal


@dataclass(frozen=True)
class Completed:
    """A completion that was applied: the job (whole when asked for), its dependencies, and its
    type and claim time (for job_run_seconds)."""

    job_id: str
    dependencies: tuple[str, ...]
    job_type: str
    claimed_at: datetime | None
    row: Any


def _claim_values(request: ClaimRequest, now: datetime) -> dict[str, Any]:
    """The parameters of `statements.claim`."""
    values: dict[str, Any] = {
        "now": now, "worker_id": request.worker_id, "max_jobs": request.max_jobs,
        "b_lease_expires_at": now + timedelta(seconds=request.lease_s),
    }
    if request.dependencies:
        values["dependencies"] = list(request.dependencies)
    if request.job_type is not None:
        values["b_job_type"] = request.job_type
    return values


def _forwarded(finishes: Sequence[Finish]) -> dict[str, float | None]:
    """The jobs whose successes job_svc forwards (their worker did not record its outcomes
    itself), with their call durations."""
    return {f.job_id: f.call_duration_s for f in finishes if not f.outcomes_recorded}


def _completion_values(worker_id: str, finishes: Sequence[Finish], now: datetime) -> dict[str, Any]:
    """The parameters of `statements.complete`."""
    forwarded = _forwarded(finishes)
    return {
        "ids": [f.job_id for f in finishes], "worker_id": worker_id, "now": now,
        # Job ids are UUIDs: nothing in them needs escaping, and each result is JSON already.
        "results": "{" + ",".join(f'"{f.job_id}":{f.result_json}' for f in finishes if f.result_json is not None) + "}",
        "durations": json.dumps(forwarded),
        # The outbox rows remember each job's completing call.
        "caller_request_ids": json.dumps({f.job_id: f.request_id for f in finishes if f.job_id in forwarded and f.request_id}),
    }


def _completed(rows: list[Any]) -> list[Completed]:
    """The completions a `statements.complete` returned."""
    return [Completed(row.id, tuple(sorted(row.dependency_list.split(","))), row.job_type, row.claimed_at, row) for row in rows]


@dataclass(frozen=True)
class Requeued:
    """Jobs whose lease expired: back in the queue, or failed as poison."""

    pending: list[str]
    failed: list[str]


class LeaseStatements:
    """Mixed into `store.JobTx`, whose `jobs_from_rows` and (from HoldStatements) `settle`
    these statements use."""

    connection: AsyncConnection
    postgres: bool

    async def claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        """Leases up to `max_jobs` runnable jobs in claim order (priority, run time, age), in
        one statement that returns them with their dependencies; SKIP LOCKED on PostgreSQL, so
        concurrent claimers take different jobs instead of waiting for each other.

        Runnable is `pending` and due, nothing more: a job with a hold, or whose breaker blocks,
        is `paused`, since every statement that adds a hold or stores a blocking state pauses
        the jobs in the same transaction (holds.py). So the claim walks ix_jobs_claim in order
        and stops at the limit; re-checking holds and breaker states here would invite the
        planner to scan and sort the whole queue when its statistics misjudge them. A pending
        job has no hold, so none is read."""
        statement = statements.claim(self.postgres, bool(request.dependencies), request.job_type is not None)
        return await self._claimed(list(await self.connection.execute(statement, _claim_values(request, now))))

    async def _claimed(self, rows: list[Any]) -> list[Job]:
        """The jobs a claim returned, in claim order."""
        claimed = await self.jobs_from_rows(rows, without_holds=True)
        return sorted(claimed, key=lambda job: (job.priority, job.run_after, job.created_at, job.id))

    async def renew(self, worker_id: str, job_ids: Sequence[str], lease_expires_at: datetime, now: datetime) -> set[str]:
        """Extends the leases `worker_id` still holds; returns their ids."""
        values = {"ids": list(job_ids), "worker_id": worker_id, "now": now, "b_lease_expires_at": lease_expires_at}
        return set((await self.connection.execute(statements.renew(self.postgres), values)).scalars())

    async def complete_held(
        self, worker_id: str, finishes: Sequence[Finish], now: datetime, *, whole_rows: bool
    ) -> list[Completed]:
        """Completes, with their results, the jobs `worker_id` still holds among `finishes`;
        their holds go (they no longer mean anything) and each dependency's success goes to the
        outbox, unless the worker recorded its outcomes itself. One statement on PostgreSQL."""
        rows = list(await self.connection.execute(statements.complete(self.postgres, whole_rows), _completion_values(worker_id, finishes, now)))
        completed = _completed(rows)
        if completed and not self.postgres:
            forwarded = _forwarded(finishes)
            await self.connection.execute(statements.complete_holds(), {"ids": [c.job_id for c in completed]})
            callers = {f.job_id: f.request_id for f in finishes}
            rows = [
                {"dependency": d, "success": True, "duration_s": forwarded[c.job_id], "created_at": now, "request_id": callers[c.job_id]}
                for c in completed if c.job_id in forwarded for d in c.dependencies
            ]
            if rows:
                await self.connection.execute(insert(breaker_outbox), rows)
        return completed

    async def complete_held_and_claim(
        self, worker_id: str, finishes: Sequence[Finish], request: ClaimRequest, now: datetime
    ) -> tuple[list[Completed], list[Job]]:
        """PostgreSQL: `complete_held` (without whole rows) and then `claim`, in one statement
        (statements.complete_and_claim), which applies both or neither. `request` is
        `worker_id`'s own claim (FinishJobs' next claim): the statement has one :worker_id."""
        statement = statements.complete_and_claim(bool(request.dependencies), request.job_type is not None)
        values = _claim_values(request, now) | _completion_values(worker_id, finishes, now)
        rows = list(await self.connection.execute(statement, values))
        return _completed([row for row in rows if row.completed]), await self._claimed([row for row in rows if not row.completed])

    async def lock_held(self, worker_id: str, job_ids: Sequence[str], now: datetime) -> list[Job]:
        """The jobs `worker_id` still holds among `job_ids`, row-locked, with their dependencies."""
        values = {"ids": list(job_ids), "worker_id": worker_id, "now": now}
        return await self.jobs_from_rows(list(await self.connection.execute(statements.lock_held(self.postgres), values)))

    async def apply_failures(self, plans: dict[str, tuple[FailurePlan, str]], now: datetime) -> None:
        """Each failed job's plan (status, attempts, next run) and error, in one executemany;
        failed jobs lose their holds, retried ones get those that apply now (`settle`)."""
        if not plans:
            return
        rows = [
            {
                "job_id": job_id, "new_status": plan.status, "new_attempts": plan.attempts, "new_run_after": plan.run_after,
                "new_provider_failures": plan.provider_failures, "new_last_error": error, "now": now,
            }
            for job_id, (plan, error) in plans.items()
        ]
        await self.connection.execute(statements.apply_failure(), rows)
        await self.drop_holds([job_id for job_id, (plan, _) in plans.items() if plan.status is JobStatus.FAILED])
        await self.settle([job_id for job_id, (plan, _) in plans.items() if plan.status is JobStatus.PENDING], now)

    async def drop_holds(self, job_ids: Sequence[str]) -> None:
        for chunk in chunks(job_ids):
            await self.connection.execute(delete(job_holds).where(job_holds.c.job_id.in_(chunk)))

    # -- expiry --------------------------------------------------------------------------------

    async def has_expired_leases(self, now: datetime) -> bool:
        return bool(await self.expired_lease_ids(now, limit=1))

    async def expired_lease_ids(self, now: datetime, limit: int = 1000) -> list[str]:
        """Some processing jobs whose lease has ended (the next pass takes the rest)."""
        return list((await self.connection.execute(statements.expired_leases(), {"now": now, "limit": limit})).scalars())

    async def requeue_expired(self, job_ids: Sequence[str], now: datetime, max_lease_expirations: int) -> Requeued:
        """Processing jobs whose lease has ended go back to the queue (no attempt spent: the
        worker, not the job, is gone), except those whose lease has now expired
        `max_lease_expirations` times: a job that kills or hangs every worker that takes it
        fails instead (poison protection). Only `job_ids` are considered, those whose hold keys
        the caller locked. `settle` then holds the requeued that must wait."""
        expired = jobs.alias("expired")
        # The status is inlined so that the partial index ix_jobs_lease applies to any plan.
        chosen = select(expired.c.id).where(
            expired.c.id.in_(list(job_ids)), expired.c.status == status_literal(JobStatus.PROCESSING),
            expired.c.lease_expires_at < now,
        )
        if self.postgres:
            chosen = chosen.with_for_update(skip_locked=True, of=expired)
        poisoned = jobs.c.lease_expirations + 1 >= max_lease_expirations
        before, after = poison_error(max_lease_expirations)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(chosen))
            .values(
                status=case(
                    (poisoned, cast(literal(JobStatus.FAILED.value), JOB_STATUS)),
                    else_=cast(literal(JobStatus.PENDING.value), JOB_STATUS),
                ),
                last_error=case(
                    (poisoned, literal(before, Text) + jobs.c.lease_owner + literal(after, Text)),
                    else_=literal("lease of ", Text) + jobs.c.lease_owner + literal(" expired", Text),
                ),
                lease_expirations=jobs.c.lease_expirations + 1,
                lease_owner=None, lease_expires_at=None, updated_at=now,
            )
            .returning(jobs.c.id, jobs.c.status)
        )
        rows = list(await self.connection.execute(statement))
        requeued = Requeued([r.id for r in rows if r.status is JobStatus.PENDING], [r.id for r in rows if r.status is JobStatus.FAILED])
        await self.drop_holds(requeued.failed)
        await self.settle(requeued.pending, now)
        return requeued
