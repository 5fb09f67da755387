"""The hold statements of job_svc's store: why jobs are paused, set-based.

A job is paused while it has at least one row in `job_holds`. Breaker reconciliation, standing
manual and campaign pauses, and jobs coming back to the queue all work through these
statements: each changes any number of jobs in one INSERT ... SELECT, UPDATE or DELETE (never a
loop over jobs), inserts holds with ON CONFLICT DO NOTHING and only moves jobs that are in the
expected status, so running one twice changes nothing.

`HoldStatements` is the half of `store.JobTx` that deals with holds.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Select,
    String,
    Text,
    and_,
    any_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from job_svc.domain import UNFINISHED_STATUSES, HoldKind, HoldSelector, JobStatus
from job_svc.tables import (
    HOLD_KIND,
    UtcDateTime,
    breaker_states,
    job_dependencies,
    job_holds,
    job_pauses,
    jobs,
    status_literal,
    statuses_literal,
)
from services.watch import BreakerState

BLOCKING_STATES = tuple(state for state in BreakerState if state.blocks_calls)
# Jobs coming into the queue are held while their breaker blocks calls, and while it is
# HALF_OPEN too: the trial's jobs were released when it began (`release_oldest`); any other job
# waits for CLOSED, so a half-open provider never sees more than its trial.
QUEUE_HOLDING_STATES = (*BLOCKING_STATES, BreakerState.HALF_OPEN)
# Statements that name jobs by id take at most this many ids at once (bind-parameter limits).
ID_CHUNK = 500
HOLD_COLUMNS = ["job_id", "kind", "dependency", "revision", "reason", "created_at"]


def chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start : start + ID_CHUNK]


def jobs_of_dependency(dependency: str) -> ColumnElement[bool]:
    return jobs.c.id.in_(select(job_dependencies.c.job_id).where(job_dependencies.c.dependency == dependency))


def _jobs_of(selector: HoldSelector) -> ColumnElement[bool]:
    if selector.kind is HoldKind.CAMPAIGN:
        return jobs.c.campaign_id == selector.key
    return jobs_of_dependency(selector.key)


def _has_hold() -> ColumnElement[bool]:
    return exists().where(job_holds.c.job_id == jobs.c.id)


class HoldStatements:
    connection: AsyncConnection
    postgres: bool

    def _insert(self, table: Any) -> Any:
        return (postgresql.insert if self.postgres else sqlite.insert)(table)

    # -- jobs back in the queue ----------------------------------------------------------------

    async def settle(self, job_ids: Sequence[str], now: datetime, *, created: bool = False) -> int:
        """Jobs just put back in the queue as pending get the holds that apply to them now
        (standing manual and campaign pauses, open or half-open breakers); those with a hold
        are paused.
        `created`: the jobs are new, so they had no hold before this. Returns holds added."""
        added = 0
        for chunk in chunks(job_ids):
            added_here = await self._hold_by_pauses(chunk, now) + await self._hold_by_breakers(chunk, now)
            if added_here or not created:
                await self.connection.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(chunk), jobs.c.status == status_literal(JobStatus.PENDING), _has_hold())
                    .values(status=status_literal(JobStatus.PAUSED), updated_at=now)
                )
            added += added_here
        return added

    async def _hold_by_pauses(self, job_ids: Sequence[str], now: datetime) -> int:
        manual = (
            select(
                job_dependencies.c.job_id, job_pauses.c.kind, job_pauses.c.key, literal(0, BigInteger),
                job_pauses.c.reason, literal(now, UtcDateTime),
            )
            .select_from(job_dependencies.join(job_pauses, job_pauses.c.key == job_dependencies.c.dependency))
            .where(job_dependencies.c.job_id.in_(job_ids), job_pauses.c.kind == HoldKind.MANUAL)
        )
        campaign = (
            select(
                jobs.c.id, job_pauses.c.kind, literal("", String), literal(0, BigInteger),
                job_pauses.c.reason, literal(now, UtcDateTime),
            )
            .select_from(jobs.join(job_pauses, job_pauses.c.key == jobs.c.campaign_id))
            .where(jobs.c.id.in_(job_ids), job_pauses.c.kind == HoldKind.CAMPAIGN)
        )
        return await self._insert_holds(union_all(manual, campaign))

    async def _hold_by_breakers(self, job_ids: Sequence[str], now: datetime) -> int:
        source = (
            select(
                job_dependencies.c.job_id, literal(HoldKind.BREAKER, HOLD_KIND), job_dependencies.c.dependency,
                breaker_states.c.revision, cast(breaker_states.c.state, Text), literal(now, UtcDateTime),
            )
            .select_from(job_dependencies.join(breaker_states, breaker_states.c.dependency == job_dependencies.c.dependency))
            .where(job_dependencies.c.job_id.in_(job_ids), breaker_states.c.state.in_(QUEUE_HOLDING_STATES))
        )
        return await self._insert_holds(source)

    async def _insert_holds(self, source: Select[Any] | CompoundSelect[Any]) -> int:
        # The SELECT always has a WHERE clause: SQLite needs one before ON CONFLICT.
        statement = self._insert(job_holds).from_select(HOLD_COLUMNS, source).on_conflict_do_nothing()
        return (await self.connection.execute(statement)).rowcount

    # -- breaker reconciliation ----------------------------------------------------------------

    async def hold_dependency(self, dependency: str, revision: int, reason: str, now: datetime) -> int:
        """A breaker hold on every queued job of `dependency`, and every pending one of them
        paused, whatever the number of jobs. Returns jobs paused.

        A breaker opening on a large backlog runs this on every queued job of a provider, so on
        PostgreSQL it is one statement written for speed (bench/job_pause.py measures it
        against a bare UPDATE of the same rows' status):
        - the pending jobs are paused first and their ids RETURNed, and those get the hold by a
          plain INSERT: a pending job has no hold at all, so there is nothing to conflict with,
          and ON CONFLICT's speculative insertion (an extra index probe and WAL record per row)
          or an anti-join (which the planner turns into a scan of all the dependency's holds
          per job when its statistics are stale) would only cost;
        - only the jobs that were paused already (for another reason, or held by a missed or
          repeated event) go through ON CONFLICT DO NOTHING;
        - the holds go in in job id order, so each index takes them sorted.
        All parts of one statement see one snapshot, so the two sets are disjoint. SQLite has no
        data-modifying WITH: there it is an UPDATE, then the holds of every paused job of the
        dependency with ON CONFLICT DO NOTHING (one writer at a time: nothing arrives between)."""
        of_dependency = jobs_of_dependency(dependency)
        hold = [
            literal(HoldKind.BREAKER, HOLD_KIND), literal(dependency, String), literal(revision, BigInteger),
            literal(reason, Text), literal(now, UtcDateTime),
        ]
        pause = (
            update(jobs)
            .where(jobs.c.status == status_literal(JobStatus.PENDING), of_dependency)
            .values(status=status_literal(JobStatus.PAUSED), updated_at=now)
        )
        already_paused = select(jobs.c.id, *hold).where(jobs.c.status == status_literal(JobStatus.PAUSED), of_dependency).order_by(jobs.c.id)
        if not self.postgres:
            paused = (await self.connection.execute(pause)).rowcount
            await self._insert_holds(already_paused)
            return paused
        paused_now = pause.returning(jobs.c.id).cte("paused_now")
        hold_paused_now = insert(job_holds).from_select(HOLD_COLUMNS, select(paused_now.c.id, *hold).order_by(paused_now.c.id))
        hold_already_paused = self._insert(job_holds).from_select(HOLD_COLUMNS, already_paused).on_conflict_do_nothing()
        statement = select(func.count()).select_from(paused_now).add_cte(
            hold_paused_now.cte("hold_paused_now"), hold_already_paused.cte("hold_already_paused")
        )
        return await self.connection.scalar(statement) or 0

    async def release_oldest(self, dependency: str, count: int, now: datetime) -> int:
        """Lets the oldest `count` paused jobs of `dependency` into its trial, in one statement,
        and makes them pending. A job qualifies when every hold it has is a breaker hold of a
        HALF_OPEN dependency (this one included, as the mirror stores the new state first):
        a job held for any other reason would not run anyway, and one that needs two providers
        both in trial must be let into both trials at once, or neither would ever see a call.
        Returns the jobs released."""
        if count <= 0:
            return 0
        held, other = job_holds.alias("held"), job_holds.alias("other")
        half_open = select(breaker_states.c.dependency).where(breaker_states.c.state == BreakerState.HALF_OPEN)
        oldest = (
            select(held.c.job_id)
            .select_from(held.join(jobs, jobs.c.id == held.c.job_id))
            .where(
                held.c.kind == HoldKind.BREAKER,
                held.c.dependency == dependency,
                jobs.c.status == status_literal(JobStatus.PAUSED),
                ~exists().where(
                    other.c.job_id == held.c.job_id,
                    or_(other.c.kind != HoldKind.BREAKER, other.c.dependency.not_in(half_open)),
                ),
            )
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(count)
        )
        # PostgreSQL: ARRAY(subquery) runs the subquery once (an InitPlan); as `IN (subquery)`
        # the planner may rerun it per hold row when its statistics are stale. SQLite runs an
        # uncorrelated IN subquery once.
        chosen = job_holds.c.job_id == any_(func.array(oldest.scalar_subquery())) if self.postgres else job_holds.c.job_id.in_(oldest)
        statement = delete(job_holds).where(job_holds.c.kind == HoldKind.BREAKER, job_holds.c.dependency.in_(half_open), chosen)
        released = list(set((await self.connection.execute(statement.returning(job_holds.c.job_id))).scalars()))
        return await self._release_unheld(jobs.c.id.in_(released), now) if released else 0

    async def drop_breaker_holds(self, dependency: str) -> int:
        statement = delete(job_holds).where(job_holds.c.kind == HoldKind.BREAKER, job_holds.c.dependency == dependency)
        return (await self.connection.execute(statement)).rowcount

    async def release_unheld_of_dependency(self, dependency: str, now: datetime) -> int:
        return await self._release_unheld(jobs_of_dependency(dependency), now)

    async def _pause_held(self, which: ColumnElement[bool], now: datetime) -> int:
        statement = (
            update(jobs)
            .where(jobs.c.status == status_literal(JobStatus.PENDING), which, _has_hold())
            .values(status=status_literal(JobStatus.PAUSED), updated_at=now)
        )
        return (await self.connection.execute(statement)).rowcount

    async def _release_unheld(self, which: ColumnElement[bool], now: datetime) -> int:
        """Paused jobs among `which` with no hold left are pending again, claimable at once,
        except a job that has never run and waits for its scheduled start."""
        retried = or_(jobs.c.attempts > 0, jobs.c.provider_failures > 0, jobs.c.lease_expirations > 0)
        statement = (
            update(jobs)
            .where(jobs.c.status == status_literal(JobStatus.PAUSED), which, ~_has_hold())
            .values(
                status=status_literal(JobStatus.PENDING), updated_at=now,
                run_after=case((and_(jobs.c.run_after > now, retried), literal(now, UtcDateTime)), else_=jobs.c.run_after),
            )
        )
        return (await self.connection.execute(statement)).rowcount

    # -- manual and campaign pauses ------------------------------------------------------------

    async def add_pause(self, selector: HoldSelector, reason: str, now: datetime) -> int:
        """Stores the standing pause (the first reason stays), holds every unfinished job it
        selects and pauses the pending ones. Returns the unfinished jobs carrying the hold."""
        statement = self._insert(job_pauses).values(kind=selector.kind, key=selector.key, reason=reason, created_at=now)
        await self.connection.execute(statement.on_conflict_do_nothing())
        stored_reason = await self.connection.scalar(
            select(job_pauses.c.reason).where(job_pauses.c.kind == selector.kind, job_pauses.c.key == selector.key)
        )
        source = select(
            jobs.c.id, literal(selector.kind, HOLD_KIND), literal(selector.hold_dependency, String),
            literal(0, BigInteger), literal(stored_reason, Text), literal(now, UtcDateTime),
        ).where(_jobs_of(selector), jobs.c.status.in_(statuses_literal(UNFINISHED_STATUSES)))
        await self._insert_holds(source)
        await self._pause_held(_jobs_of(selector), now)
        count = (
            select(func.count())
            .select_from(job_holds.join(jobs, jobs.c.id == job_holds.c.job_id))
            .where(*self._holds_of(selector), _jobs_of(selector), jobs.c.status.in_(statuses_literal(UNFINISHED_STATUSES)))
        )
        return await self.connection.scalar(count) or 0

    async def remove_pause(self, selector: HoldSelector, now: datetime) -> tuple[int, int]:
        """Removes the standing pause and its holds; returns (jobs that lost the hold, jobs now
        pending)."""
        await self.connection.execute(
            delete(job_pauses).where(job_pauses.c.kind == selector.kind, job_pauses.c.key == selector.key)
        )
        statement = delete(job_holds).where(*self._holds_of(selector))
        if selector.kind is HoldKind.CAMPAIGN:
            statement = statement.where(job_holds.c.job_id.in_(select(jobs.c.id).where(jobs.c.campaign_id == selector.key)))
        affected = (await self.connection.execute(statement)).rowcount
        resumed = await self._release_unheld(_jobs_of(selector), now) if affected else 0
        return affected, resumed

    @staticmethod
    def _holds_of(selector: HoldSelector) -> list[ColumnElement[bool]]:
        return [job_holds.c.kind == selector.kind, job_holds.c.dependency == selector.hold_dependency]
