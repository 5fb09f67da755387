"""job_svc's use cases: one method per operation, each one transaction over `JobStore`.

The servicer turns protos into the domain's validated commands and calls these; they apply the
domain's rules and the store's statements. `reconcile` is the breaker mirror's
`on_state_change`: it runs inside the mirror's transaction, which also stores the new state and
the applied revision.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from job_svc import metrics
from job_svc.domain import (
    ClaimRequest,
    HoldKind,
    HoldSelector,
    Job,
    JobStatus,
    NewJob,
    RetryPolicy,
    check_cancellable,
    check_failed_dependency,
    check_lease,
    created_job,
    finished,
    new_job_id,
    optional_uuid,
    plan_failure,
    truncate_error,
    validate_reason,
    validate_worker_id,
)
from job_svc.store import JobStore, JobTx, ListFilter, Outcome
from services.errors import NotFound
from services.pagination import created_position, decode_page_token, encode_page_token, page_size, parse_created_position
from services.validation import validate_dependency_name, validate_uuid
from services.watch import BreakerState, BreakerView

log = structlog.get_logger()

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


class BreakerFreshness(Protocol):
    def last_contact_epoch(self) -> float | None: ...

    def is_stale(self, bound_s: float) -> bool: ...


@dataclass(frozen=True)
class DependencyStatus:
    dependency: str
    state: BreakerState
    counts: dict[JobStatus, int]


@dataclass(frozen=True)
class QueueStatus:
    counts: dict[JobStatus, int]
    dependencies: list[DependencyStatus]
    blocked: list[str]
    paused_by_hold: dict[HoldKind, int]
    applied_revision: int
    breaker_contact: datetime | None
    stale: bool


@dataclass(frozen=True)
class JobPage:
    jobs: list[Job]
    next_page_token: str


async def _shielded(work: Awaitable[T]) -> T:
    """Ending a claim is one transaction that a cancelled call must not cut short."""
    return await asyncio.shield(work)


class JobUseCases:
    def __init__(
        self,
        store: JobStore,
        freshness: BreakerFreshness,
        *,
        retry_policy: RetryPolicy,
        max_payload_bytes: int,
        stale_after_s: float,
        clock: Callable[[], datetime] = utc_now,
        outcomes_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.freshness = freshness
        self.retry_policy = retry_policy
        self.max_payload_bytes = max_payload_bytes
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.outcomes_written = outcomes_written

    # -- jobs ----------------------------------------------------------------------------------

    async def create_job(self, new: NewJob) -> Job:
        now, job_id = self.clock(), new_job_id()
        async with self.store.transaction() as tx:
            # Share-locks the job's breaker states: an opening that races this create either
            # waits and then sees the job, or goes first and the job is created paused.
            await tx.lock_breaker_states(new.dependencies)
            if not await tx.insert_job(job_id, new, now):
                return (await tx.load_jobs([await tx.job_id_for_request(new.request_id or "")]))[0]
            if await tx.settle([job_id], now, created=True):
                return (await tx.load_jobs([job_id]))[0]  # held at birth
        return created_job(job_id, new, now)

    async def get_job(self, job_id: str) -> Job:
        job_id = validate_uuid(job_id)
        async with self.store.transaction() as tx:
            found = await tx.load_jobs([job_id])
        if not found:
            raise NotFound(f"job {job_id} does not exist")
        return found[0]

    async def list_jobs(
        self, *, requested_size: int, page_token: str, status: JobStatus | None, campaign_id: str, dependency: str
    ) -> JobPage:
        size = page_size(requested_size)
        where = ListFilter(
            status=status,
            campaign_id=optional_uuid(campaign_id, "campaign_id"),
            dependency=validate_dependency_name(dependency) if dependency else None,
        )
        filters = {"status": status.value if status else "", "campaign_id": where.campaign_id or "", "dependency": where.dependency or ""}
        after = parse_created_position(decode_page_token(page_token, filters))
        async with self.store.transaction() as tx:
            found = await tx.list_jobs(where, after, size + 1)
        page, more = found[:size], len(found) > size
        token = encode_page_token(created_position(page[-1].created_at, page[-1].id), filters) if more else ""
        return JobPage(page, token)

    async def cancel_job(self, job_id: str) -> Job:
        job_id = validate_uuid(job_id)
        return await _shielded(self._cancel(job_id))

    async def _cancel(self, job_id: str) -> Job:
        now = self.clock()
        async with self.store.transaction() as tx:
            job = await tx.lock_job(job_id)
            check_cancellable(job)
            await tx.finish_job(job_id, JobStatus.CANCELLED, now)
        return finished(job, JobStatus.CANCELLED, now)

    # -- the queue -----------------------------------------------------------------------------

    async def claim_jobs(self, request: ClaimRequest) -> list[Job]:
        return await _shielded(self._claim(request))

    async def _claim(self, request: ClaimRequest) -> list[Job]:
        now = self.clock()
        async with self.store.transaction() as tx:
            expired = await self._requeue_expired(tx, now)
            claimed = await tx.load_jobs(await tx.claim(request, now))
        metrics.EXPIRED_LEASES.inc(len(expired))
        metrics.CLAIMS.inc(len(claimed))
        return claimed

    async def requeue_expired(self) -> int:
        """The lease sweeper's pass: jobs of dead workers go back to the queue."""
        async with self.store.transaction() as tx:
            expired = await self._requeue_expired(tx, self.clock())
        if expired:
            metrics.EXPIRED_LEASES.inc(len(expired))
            log.info("leases_expired", jobs=len(expired))
        return len(expired)

    @staticmethod
    async def _requeue_expired(tx: JobTx, now: datetime) -> list[str]:
        if not await tx.has_expired_leases(now):
            return []
        # Breaker states before job rows (the lock order); settle then reads them stable.
        await tx.lock_breaker_states()
        return await tx.requeue_expired(now)

    async def complete_job(self, job_id: str, worker_id: str, call_duration_s: float | None) -> Job:
        job_id, worker_id = validate_uuid(job_id), validate_worker_id(worker_id)
        job = await _shielded(self._complete(job_id, worker_id, call_duration_s))
        self.outcomes_written()
        return job

    async def _complete(self, job_id: str, worker_id: str, call_duration_s: float | None) -> Job:
        now = self.clock()
        async with self.store.transaction() as tx:
            job = await tx.lock_job(job_id)
            check_lease(job, worker_id)
            await tx.finish_job(job_id, JobStatus.COMPLETED, now)
            # Forwarded to breaker_svc by the outbox forwarder: never lost, never blocking.
            await tx.add_outcomes([Outcome(d, True, call_duration_s) for d in job.dependencies], now)
        return finished(job, JobStatus.COMPLETED, now)

    async def fail_job(
        self, job_id: str, worker_id: str, error: str, failed_dependency: str, call_duration_s: float | None
    ) -> Job:
        job_id, worker_id = validate_uuid(job_id), validate_worker_id(worker_id)
        if failed_dependency:
            validate_dependency_name(failed_dependency, "failed_dependency")
        job = await _shielded(self._fail(job_id, worker_id, truncate_error(error), failed_dependency, call_duration_s))
        self.outcomes_written()
        return job

    async def _fail(
        self, job_id: str, worker_id: str, error: str, failed_dependency: str, call_duration_s: float | None
    ) -> Job:
        now = self.clock()
        async with self.store.transaction() as tx:
            await tx.lock_breaker_states()
            job = await tx.lock_job(job_id)
            check_lease(job, worker_id)
            provider = check_failed_dependency(job, failed_dependency)
            plan = plan_failure(job, provider, now, self.retry_policy)
            if plan.status is JobStatus.FAILED:
                await tx.finish_job(job_id, JobStatus.FAILED, now, attempts=plan.attempts, last_error=error)
            else:
                await tx.update_job(
                    job_id, status=JobStatus.PENDING, attempts=plan.attempts, run_after=plan.run_after,
                    provider_failures=plan.provider_failures, last_error=error, lease_owner=None,
                    lease_expires_at=None, updated_at=now,
                )
                # Paused at once if a dependency's breaker is blocked or a pause applies.
                await tx.settle([job_id], now)
            if provider is not None:
                await tx.add_outcomes([Outcome(provider, False, call_duration_s)], now)
            return (await tx.load_jobs([job_id]))[0]

    # -- holds ---------------------------------------------------------------------------------

    async def pause_jobs(self, selector: HoldSelector, reason: str) -> int:
        reason = validate_reason(reason)
        async with self.store.transaction() as tx:
            held = await tx.add_pause(selector, reason, self.clock())
        log.info("jobs_paused", kind=selector.kind.value, key=selector.key, jobs=held)
        return held

    async def resume_jobs(self, selector: HoldSelector) -> tuple[int, int]:
        async with self.store.transaction() as tx:
            await tx.lock_breaker_states()
            affected, resumed = await tx.remove_pause(selector, self.clock())
        metrics.RESUMED.labels(selector.kind.value).inc(resumed)
        log.info("jobs_resumed", kind=selector.kind.value, key=selector.key, jobs=affected, resumed=resumed)
        return affected, resumed

    async def queue_status(self) -> QueueStatus:
        async with self.store.transaction() as tx:
            counts = await tx.counts_by_status()
            per_dependency = await tx.counts_by_dependency()
            paused_by_hold = await tx.paused_counts_by_hold_kind()
            views = await tx.breaker_views()
            applied = await tx.applied_revision()
        contact = self.freshness.last_contact_epoch()
        dependencies = [
            DependencyStatus(d, views[d].state if d in views else BreakerState.CLOSED, per_dependency.get(d, {}))
            for d in sorted(set(per_dependency) | set(views))
        ]
        return QueueStatus(
            counts=counts,
            dependencies=dependencies,
            blocked=sorted(d for d, view in views.items() if view.state.blocks_calls),
            paused_by_hold=paused_by_hold,
            applied_revision=applied or 0,
            breaker_contact=datetime.fromtimestamp(contact, UTC) if contact is not None else None,
            stale=self.freshness.is_stale(self.stale_after_s),
        )

    # -- breaker reconciliation ----------------------------------------------------------------

    async def reconcile(self, connection: AsyncConnection, new: BreakerView, old: BreakerView | None) -> None:
        """Brings the jobs of `new.dependency` to what its breaker state requires. Runs in the
        mirror's transaction; safe to run twice (holds are inserted with ON CONFLICT DO NOTHING
        and only jobs in the matching status change)."""
        started, now = time.perf_counter(), self.clock()
        tx = self.store.within(connection)
        dependency, paused, released = new.dependency, 0, 0
        if new.state.blocks_calls or new.state is BreakerState.HALF_OPEN:
            # HALF_OPEN first holds every queued job too: after a reset or a missed event the
            # jobs may never have been held, and only the trial permits may run.
            paused = await tx.hold_dependency(dependency, new.revision, new.state.value, now)
        if new.state is BreakerState.HALF_OPEN:
            released = await tx.release_oldest(dependency, new.half_open_permitted_calls, now)
        elif not new.state.blocks_calls:
            await tx.drop_breaker_holds(dependency)
            released = await tx.release_unheld_of_dependency(dependency, now)
        metrics.PAUSED.labels(HoldKind.BREAKER.value).inc(paused)
        metrics.RESUMED.labels(HoldKind.BREAKER.value).inc(released)
        log.info(
            "breaker_reconciled", dependency=dependency, state=new.state.value,
            from_state=old.state.value if old else None, revision=new.revision, paused=paused, resumed=released,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
