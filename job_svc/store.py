"""job_svc's storage: set-based SQL over SQLAlchemy Core (async), PostgreSQL or SQLite.

`JobStore.transaction()` yields a `JobTx`: the statements of one unit of work, committed when
the block ends without an error and rolled back otherwise. Every statement that changes many
jobs is one set-based statement (INSERT ... SELECT, UPDATE ... WHERE ... IN (SELECT ...), a
multi-row INSERT), never a loop over jobs; the statements about holds are in job_svc/holds.py,
those about leases (claim, renew, finish, expiry) in job_svc/leases.py. PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`; SQLite transactions are serialised by BEGIN IMMEDIATE (services.db).
The statements of the hot paths are built once (job_svc/statements.py), so SQLAlchemy's compiled
cache and asyncpg's prepared statements serve every call after the first.

Lock order, to avoid deadlocks with the breaker mirror: a transaction that may put a job back
in the queue share-locks the mirror's breaker states first, then the job rows. Creating jobs
takes shared advisory locks on the hold keys instead (see `lock_hold_keys`).
"""

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Text, and_, cast, delete, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from job_svc import statements
from job_svc.domain import UNFINISHED_STATUSES, Hold, HoldKind, Job, JobStatus, NewJob, RedriveSelector
from job_svc.holds import HoldStatements, chunks, jobs_of_dependency
from job_svc.leases import LeaseStatements
from job_svc.tables import (
    breaker_outbox,
    breaker_watch_cursor,
    job_dependencies,
    job_holds,
    jobs,
    status_literal,
)
from job_svc.wakeups import CHANNEL, ClaimSignal, encode_due
from services.errors import NotFound
from services.mirror import BreakerMirror

# The first key of job_svc's advisory locks on hold keys ("job_"); the second is the key's hash.
# PostgreSQL keeps two-key advisory locks apart from one-key ones (the migration lock).
HOLD_LOCK_CLASS = 0x6A6F625F


def hold_key(kind: HoldKind, key: str) -> str:
    """What a hold is about, as one string: a dependency (breaker and manual holds) or a
    campaign."""
    return f"campaign:{key}" if kind is HoldKind.CAMPAIGN else f"dependency:{key}"


@dataclass(frozen=True)
class Outcome:
    dependency: str
    success: bool
    duration_s: float | None
    request_id: str | None = None  # of the call that reported it


@dataclass(frozen=True)
class OutboxRow:
    id: int
    dependency: str
    success: bool
    duration_s: float | None
    request_id: str | None


@dataclass(frozen=True)
class OutboxBatch:
    batch_id: str
    rows: list[OutboxRow]


@dataclass(frozen=True)
class ListFilter:
    status: JobStatus | None
    campaign_id: str | None
    dependency: str | None
    job_type: str | None = None


class JobStore:
    def __init__(self, engine: AsyncEngine, mirror: BreakerMirror, signal: ClaimSignal) -> None:
        self.engine = engine
        self.mirror = mirror
        self.signal = signal
        self.postgres = engine.dialect.name == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator["JobTx"]:
        async with self.engine.begin() as connection:
            tx = JobTx(connection, self.mirror, self.signal, wakes_after_commit=[])
            yield tx
        tx.wake_committed()

    @asynccontextmanager
    async def statements(self) -> AsyncIterator["JobTx"]:
        """For work whose every statement stands alone (one UPDATE that claims, renews or
        completes, a read): see `_autocommit`."""
        async with self._autocommit() as connection:
            tx = JobTx(connection, self.mirror, self.signal, wakes_after_commit=[])
            yield tx
        tx.wake_committed()

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        """On PostgreSQL each statement is its own transaction (autocommit), which saves the
        BEGIN and COMMIT round trips; SQLite runs them in a transaction."""
        if not self.postgres:
            async with self.engine.begin() as connection:
                yield connection
            return
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    def within(self, connection: AsyncConnection) -> "JobTx":
        """The statements of this store inside a transaction someone else opened (the mirror's)."""
        return JobTx(connection, self.mirror, self.signal)

    # -- the outcome outbox (job_svc.forwarder) --------------------------------------------------
    # Each method is one short statement or transaction: nothing is held open while a batch is on the wire.

    async def claim_outbox_batch(self, limit: int, now: datetime, lease_s: float) -> OutboxBatch | None:
        """The batch to send next, leased to the caller for `lease_s` (statements.claim_outbox_batch)."""
        values = {"now": now, "limit": limit, "new_batch_id": uuid.uuid4().hex, "lease_until": now + timedelta(seconds=lease_s)}
        async with self._autocommit() as connection:
            rows = list(await connection.execute(statements.claim_outbox_batch(self.postgres), values))
        if not rows:
            return None
        return OutboxBatch(rows[0].batch_id, sorted((OutboxRow(*row[1:]) for row in rows), key=lambda row: row.id))

    async def delete_outbox_batch(self, batch_id: str) -> None:
        """breaker_svc counted the batch (the rows of it set aside stay)."""
        async with self._autocommit() as connection:
            await connection.execute(statements.delete_outbox_batch(), {"b_batch_id": batch_id})

    async def release_outbox_batch(self, batch_id: str) -> None:
        """The batch could not be sent (breaker_svc unreachable): it is next again, as it is."""
        async with self.engine.begin() as connection:
            await connection.execute(update(breaker_outbox).where(statements.in_outbox_batch()).values(lease_until=None), {"b_batch_id": batch_id})

    async def outbox_batch_failed(self, batch_id: str, error: str) -> int:
        """Counts a failure of the batch's own and frees it for a resend; returns its attempts."""
        statement = (
            update(breaker_outbox)
            .where(statements.in_outbox_batch())
            .values(attempts=breaker_outbox.c.attempts + 1, last_error=error[:_MAX_ERROR], lease_until=None)
            .returning(breaker_outbox.c.attempts)
        )
        async with self.engine.begin() as connection:
            return max((await connection.execute(statement, {"b_batch_id": batch_id})).scalars(), default=0)

    async def split_outbox_batch(self, batch_id: str) -> None:
        """Makes each row of the batch a batch of its own (`<batch>.<row id>`), with fresh
        attempts, so that one outcome that cannot be counted holds up no other."""
        statement = (
            update(breaker_outbox)
            .where(statements.in_outbox_batch())
            .values(
                batch_id=breaker_outbox.c.batch_id + literal(".", Text) + cast(breaker_outbox.c.id, Text),
                attempts=0,
                lease_until=None,
            )
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement, {"b_batch_id": batch_id})

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


_MAX_ERROR = 2000


class JobTx(HoldStatements, LeaseStatements):
    """The statements of one transaction (those about holds are in `HoldStatements`, those
    about leases in `LeaseStatements`)."""

    def __init__(
        self, connection: AsyncConnection, mirror: BreakerMirror, signal: ClaimSignal,
        wakes_after_commit: list[datetime | None] | None = None,
    ) -> None:
        self.connection = connection
        self.mirror = mirror
        self.signal = signal
        self.postgres = connection.dialect.name == "postgresql"
        # PostgreSQL, in a transaction of the store's own: the announcements this process's
        # claims get from `wake_committed` once it committed (None inside someone else's
        # transaction, whose end it does not see: the notification wakes them then).
        self._wakes_after_commit = wakes_after_commit if self.postgres else None

    # -- breaker states ------------------------------------------------------------------------

    async def lock_breaker_states(self, dependencies: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Share-locks the mirror's states (of `dependencies`, or all) for this transaction, so
        a breaker change waits for it and then sees its jobs, or it waits for the change."""
        return await self.mirror.locked_states(self.connection, dependencies)

    async def lock_hold_keys(self, keys: Sequence[str], *, exclusive: bool = False) -> None:
        """Advisory locks on hold keys (`hold_key`), held until the transaction ends; PostgreSQL
        only (SQLite transactions are serialised already).

        Creating jobs takes them shared; whatever changes which holds a key implies (the mirror
        storing a breaker state, a manual or campaign pause added or removed) takes its key
        exclusive before it touches the jobs. So a create either commits before the change
        touches the jobs (which then sees the new jobs), or waits for the change to commit
        (and then sees the new state in `holds_apply`). Unlike share-locking the breaker rows,
        this writes nothing to the rows (no MultiXact per create on a hot dependency) and
        covers names with no row yet."""
        if self.postgres and keys:
            values = {"class_id": HOLD_LOCK_CLASS, "keys": sorted(set(keys))}
            await self.connection.execute(statements.lock_hold_keys(exclusive), values)

    async def lock_hold_keys_of(self, job_ids: Sequence[str]) -> None:
        """Shared locks on the hold keys of existing jobs, as a create takes them for new ones:
        a job going back to the queue (a failure to retry, an expired lease) then either commits
        before a breaker or pause change touches its keys, or waits for that change and settles
        under it. Without them, a change storing a dependency's first breaker state (no row to
        share-lock yet) could pass a job still processing, which then went back pending under
        an open breaker. Taken after the breaker states and before the job rows (the lock
        order)."""
        if self.postgres and job_ids:
            keys = await self.connection.execute(statements.hold_keys_of(), {"ids": list(job_ids)})
            await self.lock_hold_keys(list(keys.scalars()))

    async def breaker_views(self) -> dict[str, Any]:
        return await self.mirror.known_states(self.connection)

    async def applied_revision(self) -> int | None:
        query = select(breaker_watch_cursor.c.applied_revision).where(breaker_watch_cursor.c.id == 1)
        return await self.connection.scalar(query)

    # -- waking waiting claims -----------------------------------------------------------------

    async def announce_claimable(self, due: datetime | None = None) -> None:
        """Tells the waiting claims of every replica that jobs became claimable (at `due`, or
        now): NOTIFY on PostgreSQL (sent at commit, dropped on rollback); on SQLite the signal
        of this process at once (a woken claim waits for this transaction's write lock)."""
        if self.postgres:
            await self.connection.execute(select(func.pg_notify(CHANNEL, self._payload(due))))
            self._wake_after_commit(due)
        else:
            self.signal.wake_at(due)

    def _payload(self, due: datetime | None) -> str:
        return encode_due(due, self.signal.process_id if self._wakes_after_commit is not None else "")

    def _wake_after_commit(self, due: datetime | None) -> None:
        if self._wakes_after_commit is not None:
            self._wakes_after_commit.append(due)

    def wake_committed(self) -> None:
        """The transaction committed: this process's waiting claims take what it announced."""
        for due in self._wakes_after_commit or ():
            self.signal.wake_at(due)

    async def next_due(self, now: datetime) -> datetime | None:
        """The earliest run time of a pending job not yet due (scheduled or backing off)."""
        return await self.connection.scalar(statements.next_due(self.postgres), {"now": now})

    # -- jobs ----------------------------------------------------------------------------------

    async def insert_jobs(self, new_jobs: Sequence[tuple[str, NewJob]], now: datetime, due: datetime | None) -> tuple[set[str], bool]:
        """Inserts pending jobs and their dependencies, skipping a job whose request_id names an
        existing job; returns the ids inserted and whether any hold applies to jobs of these
        dependencies and campaigns (`holds_apply`: the fast path of a create skips `settle`
        when none does). The jobs are announced to waiting claims as claimable at `due`.
        PostgreSQL: one statement; SQLite: three."""
        dependencies = sorted({d for _, new in new_jobs for d in new.dependencies})
        campaigns = sorted({new.campaign_id for _, new in new_jobs if new.campaign_id is not None})
        if not self.postgres:
            return await self._insert_jobs_sqlite(new_jobs, now, due, dependencies, campaigns)
        values = {
            "new_ids": [job_id for job_id, _ in new_jobs],
            "new_campaign_ids": [new.campaign_id for _, new in new_jobs],
            "new_job_types": [new.job_type for _, new in new_jobs],
            "new_payloads": [new.payload_json for _, new in new_jobs],
            "new_max_attempts": [new.max_attempts for _, new in new_jobs],
            "new_run_afters": [new.run_after(now) for _, new in new_jobs],
            "new_request_ids": [new.request_id for _, new in new_jobs],
            "new_priorities": [new.priority for _, new in new_jobs],
            "link_job_ids": [job_id for job_id, new in new_jobs for _ in new.dependencies],
            "link_dependencies": [d for _, new in new_jobs for d in new.dependencies],
            "now": now, "dependencies": dependencies, "campaign_ids": campaigns, "payload": self._payload(due),
        }
        rows = list(await self.connection.execute(statements.insert_jobs_postgres(), values))
        self._wake_after_commit(due)  # the statement's NOTIFY names this process
        return {row.id for row in rows}, any(row.held for row in rows)

    async def _insert_jobs_sqlite(
        self, new_jobs: Sequence[tuple[str, NewJob]], now: datetime, due: datetime | None, dependencies: list[str], campaigns: list[str]
    ) -> tuple[set[str], bool]:
        rows = [
            {
                "id": job_id, "campaign_id": new.campaign_id, "job_type": new.job_type, "payload": new.payload,
                "status": JobStatus.PENDING, "attempts": 0, "max_attempts": new.max_attempts, "provider_failures": 0,
                "lease_owner": None, "lease_expires_at": None, "run_after": new.run_after(now), "last_error": "",
                "request_id": new.request_id, "created_at": now, "updated_at": now, "priority": new.priority,
                "result": None, "lease_expirations": 0,
            }
            for job_id, new in new_jobs
        ]
        inserted = set((await self.connection.execute(statements.insert_jobs_sqlite(), rows)).scalars())
        links = [{"job_id": job_id, "dependency": d} for job_id, new in new_jobs if job_id in inserted for d in new.dependencies]
        if not links:
            return inserted, False
        await self.connection.execute(insert(job_dependencies), links)
        values = {"dependencies": dependencies, "campaign_ids": campaigns}
        held = bool((await self.connection.execute(statements.holds_apply(False), values)).scalar())
        self.signal.wake_at(due)
        return inserted, held

    async def job_ids_for_requests(self, request_ids: Sequence[str]) -> dict[str, str]:
        query = select(jobs.c.request_id, jobs.c.id).where(jobs.c.request_id.in_(request_ids))
        found = {row.request_id: row.id for row in await self.connection.execute(query)}
        missing = set(request_ids) - found.keys()
        if missing:  # only when a job was deleted between the conflict and this read
            raise NotFound(f"no job has request_id {sorted(missing)[0]!r}")
        return found

    async def lock_job(self, job_id: str) -> Job:
        """The job, row-locked until the transaction ends (PostgreSQL)."""
        query = select(jobs).where(jobs.c.id == job_id)
        if self.postgres:
            query = query.with_for_update()
        found = await self.jobs_from_rows(list(await self.connection.execute(query)))
        if not found:
            raise NotFound(f"job {job_id} does not exist")
        return found[0]

    async def load_jobs(self, job_ids: Sequence[str]) -> list[Job]:
        loaded: list[Job] = []
        for chunk in chunks(job_ids):
            loaded += await self.jobs_from_rows(list(await self.connection.execute(select(jobs).where(jobs.c.id.in_(chunk)))))
        return sorted(loaded, key=lambda job: (job.created_at, job.id))

    async def finish_job(self, job_id: str, status: JobStatus, now: datetime, **values: Any) -> None:
        """A final status: the lease ends and the holds go (they no longer mean anything)."""
        await self.connection.execute(
            update(jobs).where(jobs.c.id == job_id)
            .values(status=status, lease_owner=None, lease_expires_at=None, updated_at=now, **values)
        )
        await self.connection.execute(delete(job_holds).where(job_holds.c.job_id == job_id))

    async def list_jobs(self, where: ListFilter, after: tuple[datetime, str] | None, limit: int) -> list[Job]:
        query = select(jobs).order_by(jobs.c.created_at, jobs.c.id).limit(limit)
        if where.status is not None:
            query = query.where(jobs.c.status == where.status)
        if where.campaign_id is not None:
            query = query.where(jobs.c.campaign_id == where.campaign_id)
        if where.dependency is not None:
            query = query.where(jobs_of_dependency(where.dependency))
        if where.job_type is not None:
            query = query.where(jobs.c.job_type == where.job_type)
        if after is not None:
            created_at, job_id = after
            query = query.where(or_(jobs.c.created_at > created_at, and_(jobs.c.created_at == created_at, jobs.c.id > job_id)))
        return await self.jobs_from_rows(list(await self.connection.execute(query)))

    async def statuses_of(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for chunk in chunks(job_ids):
            found |= {row.id: row.status for row in await self.connection.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(chunk)))}
        return found

    async def jobs_from_rows(self, rows: list[Any], *, without_holds: bool = False) -> list[Job]:
        """Jobs from rows of `jobs`; their dependencies come from a `dependency_list` column when
        the statement returned one, else from one more query. Holds are read only for jobs
        that can have any: not finished jobs (they lose theirs), nor rows the caller knows have
        none (`without_holds`)."""
        if not rows:
            return []
        ids = [row.id for row in rows]
        if "dependency_list" in rows[0]._fields:
            dependencies = {row.id: sorted(row.dependency_list.split(",")) for row in rows}
        else:
            dependencies = {job_id: [] for job_id in ids}
            query = select(job_dependencies).where(job_dependencies.c.job_id.in_(ids)).order_by(job_dependencies.c.dependency)
            for row in await self.connection.execute(query):
                dependencies[row.job_id].append(row.dependency)
        holds: dict[str, list[Hold]] = {job_id: [] for job_id in ids}
        unfinished = [] if without_holds else [
            row.id for row in rows if row.status in UNFINISHED_STATUSES and row.status is not JobStatus.PENDING
        ]
        if unfinished:
            query = select(job_holds).where(job_holds.c.job_id.in_(unfinished)).order_by(job_holds.c.created_at, job_holds.c.kind, job_holds.c.dependency)
            for row in await self.connection.execute(query):
                holds[row.job_id].append(Hold(row.kind, row.dependency, row.revision, row.reason, row.created_at))
        return [
            Job(
                id=row.id, campaign_id=row.campaign_id, job_type=row.job_type, dependencies=tuple(dependencies[row.id]),
                payload=row.payload, status=row.status, attempts=row.attempts, max_attempts=row.max_attempts,
                lease_owner=row.lease_owner, lease_expires_at=row.lease_expires_at, run_after=row.run_after,
                last_error=row.last_error, holds=tuple(holds[row.id]), created_at=row.created_at, updated_at=row.updated_at,
                provider_failures=row.provider_failures, priority=row.priority, result=row.result,
                lease_expirations=row.lease_expirations, claimed_at=row.claimed_at,
            )
            for row in rows
        ]

    # -- re-drive and retention ----------------------------------------------------------------

    async def redrive(self, selector: RedriveSelector, now: datetime) -> list[str]:
        """Failed or cancelled jobs back to pending, attempts and counters from zero; `settle`
        then holds those that must wait.

        On PostgreSQL the jobs are found first and their hold keys share-locked before they
        change, as for a failure going back to the queue (`lock_hold_keys_of`): a change storing
        a dependency's first breaker state (no row for the caller's `lock_breaker_states`) then
        waits for this transaction and pauses the jobs, or this one waits for it and `settle`
        sees the new state."""
        kind = (selector.statuses, bool(selector.ids), selector.job_type is not None, selector.campaign_id is not None)
        values = {"now": now, "ids": list(selector.ids), "b_job_type": selector.job_type, "b_campaign_id": selector.campaign_id}
        if self.postgres:
            found = list((await self.connection.execute(statements.redrivable(True, *kind), values)).scalars())
            await self.lock_hold_keys_of(found)
            kind, values = (selector.statuses, True, False, False), {"now": now, "ids": found}
        job_ids = list((await self.connection.execute(statements.redrive(self.postgres, *kind), values)).scalars())
        await self.settle(job_ids, now)
        return job_ids

    async def delete_finished(self, before: datetime, limit: int) -> int:
        """Deletes up to `limit` completed or cancelled jobs last changed before `before`, with
        their dependency rows; returns how many jobs went."""
        values = {"before": before, "limit": limit}
        if self.postgres:
            return (await self.connection.execute(statements.delete_finished_postgres(), values)).scalar_one()
        dependencies, finished = statements.delete_finished_sqlite()
        await self.connection.execute(dependencies, values)
        return (await self.connection.execute(finished, values)).rowcount

    async def add_outcomes(self, outcomes: list[Outcome], now: datetime) -> None:
        """Outbox rows for the forwarder, each with the id of the call that reported it."""
        if outcomes:
            rows = [
                {"dependency": o.dependency, "success": o.success, "duration_s": o.duration_s, "created_at": now, "request_id": o.request_id}
                for o in outcomes
            ]
            await self.connection.execute(insert(breaker_outbox), rows)

    # -- status --------------------------------------------------------------------------------

    async def counts_by_status(self) -> dict[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        return {status: count for status, count in await self.connection.execute(query)}

    async def paused_counts_by_hold_kind(self) -> dict[HoldKind, int]:
        query = (
            select(job_holds.c.kind, func.count(job_holds.c.job_id.distinct()))
            .select_from(job_holds.join(jobs, jobs.c.id == job_holds.c.job_id))
            .where(jobs.c.status == status_literal(JobStatus.PAUSED))
            .group_by(job_holds.c.kind)
        )
        return {kind: count for kind, count in await self.connection.execute(query)}

    async def counts_by_dependency(self) -> dict[str, dict[JobStatus, int]]:
        counts: dict[str, dict[JobStatus, int]] = {}
        for dependency, status, count in await self.connection.execute(statements.counts_by_dependency()):
            counts.setdefault(dependency, {})[status or JobStatus.COMPLETED] = count
        return counts

    async def due_by_dependency(self, now: datetime) -> dict[str, tuple[int, datetime]]:
        """Per dependency, the pending jobs a worker could claim now and the earliest time one of
        them became due (so the oldest one's wait)."""
        query = (
            select(job_dependencies.c.dependency, func.count(), func.min(jobs.c.run_after))
            .select_from(job_dependencies.join(jobs, jobs.c.id == job_dependencies.c.job_id))
            .where(jobs.c.status == status_literal(JobStatus.PENDING), jobs.c.run_after <= now)
            .group_by(job_dependencies.c.dependency)
        )
        return {dependency: (count, due_since) for dependency, count, due_since in await self.connection.execute(query)}

    async def outbox_backlog(self) -> int:
        """Call outcomes written but not yet forwarded to breaker_svc (nor set aside)."""
        query = select(func.count()).select_from(breaker_outbox).where(breaker_outbox.c.set_aside_at.is_(None))
        return await self.connection.scalar(query)
