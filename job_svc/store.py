"""job_svc's storage: set-based SQL over SQLAlchemy Core (async), PostgreSQL or SQLite.

`JobStore.transaction()` yields a `JobTx`: the statements of one unit of work, committed when
the block ends without an error and rolled back otherwise. Every statement that changes many
jobs is one set-based statement (INSERT ... SELECT, UPDATE ... WHERE ... IN (SELECT ...)), never
a loop over jobs; the statements about holds are in job_svc/holds.py. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`; SQLite transactions are serialised by BEGIN IMMEDIATE (services.db).

Lock order, to avoid deadlocks with the breaker mirror: a transaction that may put a job back
in the queue share-locks the mirror's breaker states first, then the job rows.
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, bindparam, cast, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from job_svc.domain import ClaimRequest, Hold, HoldKind, Job, JobStatus, NewJob
from job_svc.holds import HoldStatements, chunks, jobs_of_dependency
from job_svc.tables import (
    JOB_STATUS,
    breaker_outbox,
    breaker_watch_cursor,
    job_dependencies,
    job_holds,
    jobs,
)
from services.errors import NotFound
from services.mirror import BreakerMirror


@dataclass(frozen=True)
class Outcome:
    dependency: str
    success: bool
    duration_s: float | None


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dependency: str
    success: bool
    duration_s: float | None


@dataclass(frozen=True)
class OutboxBatch:
    batch_id: str
    rows: list[OutboxRow]


@dataclass(frozen=True)
class ListFilter:
    status: JobStatus | None
    campaign_id: str | None
    dependency: str | None


class JobStore:
    def __init__(self, engine: AsyncEngine, mirror: BreakerMirror) -> None:
        self.engine = engine
        self.mirror = mirror

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["JobTx"]:
        async with self.engine.begin() as connection:
            yield JobTx(connection, self.mirror)

    def within(self, connection: AsyncConnection) -> "JobTx":
        """The statements of this store inside a transaction someone else opened (the mirror's)."""
        return JobTx(connection, self.mirror)

    # -- the outcome outbox (job_svc.forwarder) --------------------------------------------------
    # Each method is one short transaction: nothing is held open while a batch is on the wire.

    async def claim_outbox_batch(self, limit: int, now: datetime, lease_s: float) -> OutboxBatch | None:
        """The batch to send next, leased to the caller for `lease_s`: the oldest batch formed
        before whose lease is free (a resend: same id, same rows), else a new one of the oldest
        `limit` rows not yet in a batch. SKIP LOCKED on PostgreSQL: replicas take different rows."""
        lease_until = now + timedelta(seconds=lease_s)
        async with self.engine.begin() as connection:
            formed = (
                select(breaker_outbox.c.batch_id)
                .where(breaker_outbox.c.batch_id.is_not(None), breaker_outbox.c.set_aside_at.is_(None))
                .where(or_(breaker_outbox.c.lease_until.is_(None), breaker_outbox.c.lease_until < now))
                .order_by(breaker_outbox.c.id)
                .limit(1)
            )
            batch_id = await connection.scalar(self._skip_locked(formed))
            if batch_id is not None:
                chosen = breaker_outbox.c.batch_id == batch_id
            else:
                batch_id = uuid.uuid4().hex
                unbatched = (
                    select(breaker_outbox.c.id)
                    .where(breaker_outbox.c.batch_id.is_(None), breaker_outbox.c.set_aside_at.is_(None))
                    .order_by(breaker_outbox.c.id)
                    .limit(limit)
                )
                chosen = breaker_outbox.c.id.in_(self._skip_locked(unbatched))
            statement = (
                update(breaker_outbox)
                .where(chosen, breaker_outbox.c.set_aside_at.is_(None))
                .values(batch_id=batch_id, lease_until=lease_until)
                .returning(*_OUTBOX_COLUMNS)
            )
            rows = sorted((OutboxRow(*row) for row in await connection.execute(statement)), key=lambda row: row.id)
        return OutboxBatch(batch_id, rows) if rows else None

    async def delete_outbox_batch(self, batch_id: str) -> None:
        """breaker_svc counted the batch (the rows of it set aside stay)."""
        async with self.engine.begin() as connection:
            await connection.execute(delete(breaker_outbox).where(_in_batch(batch_id)))

    async def release_outbox_batch(self, batch_id: str) -> None:
        """The batch could not be sent (breaker_svc unreachable): it is next again, as it is."""
        async with self.engine.begin() as connection:
            await connection.execute(update(breaker_outbox).where(_in_batch(batch_id)).values(lease_until=None))

    async def outbox_batch_failed(self, batch_id: str, error: str) -> int:
        """Counts a failure of the batch's own and frees it for a resend; returns its attempts."""
        statement = (
            update(breaker_outbox)
            .where(_in_batch(batch_id))
            .values(attempts=breaker_outbox.c.attempts + 1, last_error=error[:_MAX_ERROR], lease_until=None)
            .returning(breaker_outbox.c.attempts)
        )
        async with self.engine.begin() as connection:
            return max((await connection.execute(statement)).scalars(), default=0)

    async def split_outbox_batch(self, batch_id: str) -> None:
        """Makes each row of the batch a batch of its own (`<batch>.<row id>`), with fresh
        attempts, so that one outcome that cannot be counted holds up no other."""
        statement = (
            update(breaker_outbox)
            .where(_in_batch(batch_id))
            .values(
                batch_id=breaker_outbox.c.batch_id + literal(".", Text) + cast(breaker_outbox.c.id, Text),
                attempts=0,
                lease_until=None,
            )
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    async def set_aside_outcomes(self, row_ids: Sequence[int], error: str, now: datetime) -> None:
        """These outcomes are never sent again; they stay in the table, with the error, for an
        operator to look at."""
        statement = (
            update(breaker_outbox)
            .where(breaker_outbox.c.id.in_(list(row_ids)))
            .values(set_aside_at=now, last_error=error[:_MAX_ERROR], lease_until=None)
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement)

    def _skip_locked(self, query: Any) -> Any:
        return query.with_for_update(skip_locked=True) if self.engine.dialect.name == "postgresql" else query


def _in_batch(batch_id: str) -> Any:
    """The rows of the batch still to be sent (not those of it set aside)."""
    return and_(breaker_outbox.c.batch_id == batch_id, breaker_outbox.c.set_aside_at.is_(None))


_OUTBOX_COLUMNS = (breaker_outbox.c.id, breaker_outbox.c.dependency, breaker_outbox.c.success, breaker_outbox.c.duration_s)
_MAX_ERROR = 2000


class JobTx(HoldStatements):
    """The statements of one transaction (those about holds are in `HoldStatements`)."""

    def __init__(self, connection: AsyncConnection, mirror: BreakerMirror) -> None:
        self.connection = connection
        self.mirror = mirror
        self.postgres = connection.dialect.name == "postgresql"

    # -- breaker states ------------------------------------------------------------------------

    async def lock_breaker_states(self, dependencies: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Share-locks the mirror's states (of `dependencies`, or all) for this transaction, so
        a breaker change waits for it and then sees its jobs, or it waits for the change."""
        return await self.mirror.locked_states(self.connection, dependencies)

    async def breaker_views(self) -> dict[str, Any]:
        return await self.mirror.known_states(self.connection)

    async def applied_revision(self) -> int | None:
        query = select(breaker_watch_cursor.c.applied_revision).where(breaker_watch_cursor.c.id == 1)
        return await self.connection.scalar(query)

    # -- jobs ----------------------------------------------------------------------------------

    async def insert_job(self, job_id: str, new: NewJob, now: datetime) -> bool:
        """Inserts a pending job; False when its request_id names an existing job."""
        statement = self._insert(jobs).values(
            id=job_id, campaign_id=new.campaign_id, job_type=new.job_type, payload=new.payload,
            status=JobStatus.PENDING, attempts=0, max_attempts=new.max_attempts, lease_owner=None,
            lease_expires_at=None, run_after=now, last_error="", request_id=new.request_id,
            created_at=now, updated_at=now,
        )
        if new.request_id is not None:
            statement = statement.on_conflict_do_nothing(index_elements=["request_id"], index_where=jobs.c.request_id.is_not(None))
        if await self.connection.scalar(statement.returning(jobs.c.id)) is None:
            return False
        await self.connection.execute(
            insert(job_dependencies), [{"job_id": job_id, "dependency": d} for d in new.dependencies]
        )
        return True

    async def job_id_for_request(self, request_id: str) -> str:
        job_id = await self.connection.scalar(select(jobs.c.id).where(jobs.c.request_id == request_id))
        if job_id is None:
            raise NotFound(f"no job has request_id {request_id!r}")
        return job_id

    async def lock_job(self, job_id: str) -> Job:
        """The job, row-locked until the transaction ends (PostgreSQL)."""
        query = select(jobs).where(jobs.c.id == job_id)
        if self.postgres:
            query = query.with_for_update()
        found = await self._jobs_from_rows(list(await self.connection.execute(query)))
        if not found:
            raise NotFound(f"job {job_id} does not exist")
        return found[0]

    async def load_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        loaded: list[Job] = []
        for chunk in chunks(job_ids):
            loaded += await self._jobs_from_rows(list(await self.connection.execute(select(jobs).where(jobs.c.id.in_(chunk)))))
        return sorted(loaded, key=lambda job: (job.created_at, job.id))

    async def update_job(self, job_id: str, **values: Any) -> None:
        await self.connection.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    async def finish_job(self, job_id: str, status: JobStatus, now: datetime, **values: Any) -> None:
        """A final status: the lease ends and the holds go (they no longer mean anything)."""
        await self.update_job(job_id, status=status, lease_owner=None, lease_expires_at=None, updated_at=now, **values)
        await self.connection.execute(delete(job_holds).where(job_holds.c.job_id == job_id))

    async def list_jobs(self, where: ListFilter, after: tuple[datetime, str] | None, limit: int) -> list[Job]:
        query = select(jobs).order_by(jobs.c.created_at, jobs.c.id).limit(limit)
        if where.status is not None:
            query = query.where(jobs.c.status == where.status)
        if where.campaign_id is not None:
            query = query.where(jobs.c.campaign_id == where.campaign_id)
        if where.dependency is not None:
            query = query.where(jobs_of_dependency(where.dependency))
        if after is not None:
            created_at, job_id = after
            query = query.where(or_(jobs.c.created_at > created_at, and_(jobs.c.created_at == created_at, jobs.c.id > job_id)))
        return await self._jobs_from_rows(list(await self.connection.execute(query)))

    async def _jobs_from_rows(self, rows: list[Any]) -> list[Job]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        dependencies: dict[str, list[str]] = {job_id: [] for job_id in ids}
        query = select(job_dependencies).where(job_dependencies.c.job_id.in_(ids)).order_by(job_dependencies.c.dependency)
        for row in await self.connection.execute(query):
            dependencies[row.job_id].append(row.dependency)
        holds: dict[str, list[Hold]] = {job_id: [] for job_id in ids}
        query = select(job_holds).where(job_holds.c.job_id.in_(ids)).order_by(job_holds.c.created_at, job_holds.c.kind, job_holds.c.dependency)
        for row in await self.connection.execute(query):
            holds[row.job_id].append(Hold(row.kind, row.dependency, row.revision, row.reason, row.created_at))
        return [
            Job(
                id=row.id, campaign_id=row.campaign_id, job_type=row.job_type, dependencies=tuple(dependencies[row.id]),
                payload=row.payload, status=row.status, attempts=row.attempts, max_attempts=row.max_attempts,
                lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at, run_after=row.run_after,
                last_error=row.last_error, holds=tuple(holds[row.id]), created_at=row.created_at, updated_at=row.updated_at,
                provider_failures=row.provider_failures,
            )
            for row in rows
        ]

    # -- the queue -----------------------------------------------------------------------------

    async def claim(self, request: ClaimRequest, now: datetime) -> list[str]:
        """Leases up to `max_jobs` runnable jobs, oldest first, in one statement; SKIP LOCKED on
        PostgreSQL, so concurrent claimers take different jobs instead of waiting for each other.

        Runnable is `pending` and due, nothing more: a job with a hold, or whose breaker blocks,
        is `paused`, since every statement that adds a hold or stores a blocking state pauses
        the jobs in the same transaction (holds.py). So the claim walks ix_jobs_status_created
        in order and stops at the limit; re-checking holds and breaker states here would invite
        the planner to scan and sort the whole queue when its statistics misjudge them."""
        candidate = jobs.alias("candidate")
        conditions = [candidate.c.status == JobStatus.PENDING, candidate.c.run_after <= now]
        if request.dependencies:
            other = job_dependencies.alias("other")
            conditions.append(~exists().where(other.c.job_id == candidate.c.id, other.c.dependency.not_in(request.dependencies)))
        if request.job_type is not None:
            conditions.append(candidate.c.job_type == request.job_type)
        chosen = select(candidate.c.id).where(*conditions).order_by(candidate.c.created_at, candidate.c.id).limit(request.max_jobs)
        if self.postgres:
            chosen = chosen.with_for_update(skip_locked=True, of=candidate)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(chosen))
            .values(
                status=JobStatus.PROCESSING, lease_owner=request.worker_id,
                lease_expires_at=now + timedelta(seconds=request.lease_s), updated_at=now,
            )
            .returning(jobs.c.id)
        )
        return list((await self.connection.execute(statement)).scalars())

    async def has_expired_leases(self, now: datetime) -> bool:
        processing = bindparam("processing", JobStatus.PROCESSING, type_=JOB_STATUS, literal_execute=True)
        query = select(jobs.c.id).where(jobs.c.status == processing, jobs.c.lease_expires_at < now).limit(1)
        return await self.connection.scalar(query) is not None

    async def requeue_expired(self, now: datetime) -> list[str]:
        """Processing jobs whose lease has ended go back to the queue (no attempt spent: the
        worker, not the job, is gone); `settle` then holds those that must wait."""
        expired = jobs.alias("expired")
        # The status is inlined so that the partial index ix_jobs_lease applies to any plan.
        processing = bindparam("processing", JobStatus.PROCESSING, type_=JOB_STATUS, literal_execute=True)
        chosen = select(expired.c.id).where(expired.c.status == processing, expired.c.lease_expires_at < now)
        if self.postgres:
            chosen = chosen.with_for_update(skip_locked=True, of=expired)
        statement = (
            update(jobs)
            .where(jobs.c.id.in_(chosen))
            .values(
                status=JobStatus.PENDING, lease_owner=None, lease_expires_at=None, updated_at=now,
                last_error=literal("lease of ", Text) + jobs.c.lease_owner + literal(" expired", Text),
            )
            .returning(jobs.c.id)
        )
        job_ids = list((await self.connection.execute(statement)).scalars())
        await self.settle(job_ids, now)
        return job_ids

    async def add_outcomes(self, outcomes: list[Outcome], now: datetime) -> None:
        if outcomes:
            rows = [{"dependency": o.dependency, "success": o.success, "duration_s": o.duration_s, "created_at": now} for o in outcomes]
            await self.connection.execute(insert(breaker_outbox), rows)

    # -- status --------------------------------------------------------------------------------

    async def counts_by_status(self) -> dict[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        return {status: count for status, count in await self.connection.execute(query)}

    async def paused_counts_by_hold_kind(self) -> dict[HoldKind, int]:
        query = (
            select(job_holds.c.kind, func.count(job_holds.c.job_id.distinct()))
            .select_from(job_holds.join(jobs, jobs.c.id == job_holds.c.job_id))
            .where(jobs.c.status == JobStatus.PAUSED)
            .group_by(job_holds.c.kind)
        )
        return {kind: count for kind, count in await self.connection.execute(query)}

    async def counts_by_dependency(self) -> dict[str, dict[JobStatus, int]]:
        query = (
            select(job_dependencies.c.dependency, jobs.c.status, func.count())
            .select_from(job_dependencies.join(jobs, jobs.c.id == job_dependencies.c.job_id))
            .group_by(job_dependencies.c.dependency, jobs.c.status)
        )
        counts: dict[str, dict[JobStatus, int]] = {}
        for dependency, status, count in await self.connection.execute(query):
            counts.setdefault(dependency, {})[status] = count
        return counts

    async def due_by_dependency(self, now: datetime) -> dict[str, tuple[int, datetime]]:
        """Per dependency, the pending jobs a worker could claim now and the earliest time one of
        them became due (so the oldest one's wait)."""
        query = (
            select(job_dependencies.c.dependency, func.count(), func.min(jobs.c.run_after))
            .select_from(job_dependencies.join(jobs, jobs.c.id == job_dependencies.c.job_id))
            .where(jobs.c.status == JobStatus.PENDING, jobs.c.run_after <= now)
            .group_by(job_dependencies.c.dependency)
        )
        return {dependency: (count, due_since) for dependency, count, due_since in await self.connection.execute(query)}

    async def outbox_backlog(self) -> int:
        """Call outcomes written but not yet forwarded to breaker_svc (nor set aside)."""
        query = select(func.count()).select_from(breaker_outbox).where(breaker_outbox.c.set_aside_at.is_(None))
        return await self.connection.scalar(query)
