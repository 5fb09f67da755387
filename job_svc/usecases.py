"""job_svc's use cases: one method per operation, each one transaction over `JobStore`.

The servicer turns protos into the domain's validated commands and calls these; they apply the
domain's rules and the store's statements. `reconcile` is the breaker mirror's
`on_state_change`: it runs inside the mirror's transaction, which also stores the new state and
the applied revision.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar

import sqlalchemy.exc
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from job_svc import metrics
from job_svc.domain import (
    MAX_BATCH,
    MAX_JOB_TYPE_LENGTH,
    ClaimRequest,
    Finish,
    HoldKind,
    HoldSelector,
    Job,
    JobStatus,
    NewJob,
    QueuePolicy,
    RedriveSelector,
    RetryPolicy,
    check_cancellable,
    check_failed_dependency,
    check_lease,
    created_job,
    distinct_finishes,
    distinct_ids,
    finished,
    new_job_ids,
    optional_uuid,
    plan_failure,
    validate_lease,
    validate_reason,
    validate_worker_id,
)
from job_svc.leases import Completed
from job_svc.store import JobStore, JobTx, ListFilter, Outcome, hold_key
from job_svc.wakeups import ClaimSignal
from services.batching import GroupCommit
from services.request_id import current as current_request_id
from services.errors import FailedPrecondition, InvalidArgument, NotFound, ServiceError
from services.pagination import created_position, decode_page_token, encode_page_token, page_size, parse_created_position
from services.validation import validate_dependency_name, validate_text, validate_uuid
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


@dataclass(frozen=True)
class FinishReport:
    """What a batch of finishes did: the new status of each applied one (absent: lease lost),
    and the jobs themselves when the caller asked for them."""

    statuses: dict[str, JobStatus]
    jobs: dict[str, Job]


@dataclass(frozen=True)
class FinishedBatch:
    """FinishJobs' answer: the new status of each applied finish (an id missing: lease lost),
    and the jobs its next claim leased."""

    statuses: dict[str, JobStatus]
    claimed: list[Job]


@dataclass(frozen=True)
class LeaseRenewal:
    job_id: str
    lease_expires_at: datetime | None  # None: lost


def _hold_keys(new_jobs: Iterable[NewJob]) -> list[str]:
    """The hold keys new jobs depend on: their dependencies and campaigns."""
    keys = {hold_key(HoldKind.BREAKER, d) for new in new_jobs for d in new.dependencies}
    return sorted(keys | {hold_key(HoldKind.CAMPAIGN, new.campaign_id) for new in new_jobs if new.campaign_id is not None})


async def _shielded(work: Awaitable[T]) -> T:
    """A claim or a cancel is one transaction that a cancelled call must not cut short."""
    return await asyncio.shield(work)


@dataclass(frozen=True)
class FinishGroup:
    """Finishes that may share a transaction: one worker's, answered alike."""

    worker_id: str
    respond_with_jobs: bool
    batch_field: str | None


def _of_this_call(finishes: Sequence[Finish]) -> list[Finish]:
    """The finishes, stamped with the request id of the call making them (the transaction they
    go into may be shared with other calls)."""
    request_id = current_request_id()
    return [replace(finish, request_id=request_id) for finish in finishes]


def _runs_of(completed: Sequence[Completed]) -> list[metrics.Run]:
    """The runs that completions ended, for job_run_seconds."""
    return [(done.job_type, metrics.RUN_COMPLETED, done.claimed_at) for done in completed]


def _request_at_fault(error: BaseException) -> bool:
    """An error of what was asked (the transaction rolled back), not of the database: a group
    of calls that met one runs again call by call, so that only the call at fault gets it."""
    return isinstance(error, ServiceError | sqlalchemy.exc.DataError | sqlalchemy.exc.IntegrityError)


class JobUseCases:
    def __init__(
        self,
        store: JobStore,
        freshness: BreakerFreshness,
        *,
        retry_policy: RetryPolicy,
        max_payload_bytes: int,
        stale_after_s: float,
        signal: ClaimSignal,
        queue_policy: QueuePolicy = QueuePolicy(),
        clock: Callable[[], datetime] = utc_now,
        outcomes_written: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.freshness = freshness
        self.retry_policy = retry_policy
        self.max_payload_bytes = max_payload_bytes
        self.stale_after_s = stale_after_s
        self.signal = signal
        self.queue_policy = queue_policy
        self.clock = clock
        self.outcomes_written = outcomes_written
        # Concurrent calls share their transactions (services.batching): creates of the same
        # dependencies, and each worker's finishes (never two of one job in a group).
        self._creates = GroupCommit(self._create_group, max_items=MAX_BATCH, retry_alone=_request_at_fault)
        self._finishes = GroupCommit(
            self._finish_group, max_items=MAX_BATCH, retry_alone=_request_at_fault, identity=lambda f: f.job_id
        )

    # -- jobs ----------------------------------------------------------------------------------

    async def create_job(self, new: NewJob) -> Job:
        return (await self.create_jobs([new]))[0]

    async def create_jobs(self, batch: Sequence[NewJob]) -> list[Job]:
        """Creates the jobs in one transaction (shared with concurrent creates of the same
        dependencies); an item whose request_id names an existing job (or an earlier item of
        the batch, or of a call sharing the transaction) gets that job. Returns them in request
        order."""
        dependencies = tuple(sorted({d for new in batch for d in new.dependencies}))
        return await self._creates.submit(dependencies, batch)

    async def _create_group(self, _dependencies: tuple[str, ...], batch: Sequence[NewJob]) -> list[Job]:
        """The creates of the calls sharing one transaction (their group's key, the
        dependencies, is not needed here: the hold-key locks come from the jobs themselves)."""
        now = self.clock()
        planned: dict[str, NewJob] = {}
        item_ids: list[str] = []
        id_of_request: dict[str, str] = {}
        fresh_ids = iter(new_job_ids(len(batch)))
        for new in batch:
            if new.request_id is not None and new.request_id in id_of_request:
                item_ids.append(id_of_request[new.request_id])
                continue
            job_id = next(fresh_ids)
            planned[job_id] = new
            item_ids.append(job_id)
            if new.request_id is not None:
                id_of_request[new.request_id] = job_id
        async with self.store.transaction() as tx:
            # The fast path: the shared hold-key locks make one check of the breaker states and
            # standing pauses, in the INSERT's statement, safe against an opening or a pause
            # racing this create (JobTx.lock_hold_keys); only if a hold applies does `settle`
            # add the holds and pause the jobs.
            await tx.lock_hold_keys(_hold_keys(planned.values()))
            run_times = [new.run_after(now) for new in planned.values()]
            later = [t for t in run_times if t > now]
            due = min(later) if len(later) == len(run_times) else None
            inserted, held = await tx.insert_jobs(list(planned.items()), now, due)
            if due is None and later:
                await tx.announce_claimable(min(later))  # a batch both due now and scheduled
            fresh = [job_id for job_id in planned if job_id in inserted]
            if held:
                await tx.settle(fresh, now, created=True)
            repeats = {job_id: new.request_id for job_id, new in planned.items() if job_id not in inserted}
            existing = await tx.job_ids_for_requests([r for r in repeats.values() if r is not None]) if repeats else {}
            first_id = {job_id: existing[request_id] for job_id, request_id in repeats.items() if request_id is not None}
            loaded = await tx.load_jobs([*first_id.values(), *(fresh if held else ())])
        jobs = {job_id: created_job(job_id, planned[job_id], now) for job_id in fresh} | {job.id: job for job in loaded}
        return [jobs[first_id.get(job_id, job_id)] for job_id in item_ids]

    async def get_job(self, job_id: str) -> Job:
        job_id = validate_uuid(job_id)
        async with self.store.transaction() as tx:
            found = await tx.load_jobs([job_id])
        if not found:
            raise NotFound(f"job {job_id} does not exist")
        return found[0]

    async def list_jobs(
        self, *, requested_size: int, page_token: str, status: JobStatus | None, campaign_id: str, dependency: str,
        job_type: str = "",
    ) -> JobPage:
        size = page_size(requested_size)
        where = ListFilter(
            status=status,
            campaign_id=optional_uuid(campaign_id, "campaign_id"),
            dependency=validate_dependency_name(dependency) if dependency else None,
            job_type=validate_text(job_type, "job_type", max_length=MAX_JOB_TYPE_LENGTH) or None,
        )
        filters = {"status": status.value if status else "", "campaign_id": where.campaign_id or "", "dependency": where.dependency or ""}
        if where.job_type is not None:  # only then: tokens issued before this filter existed stay valid
            filters["job_type"] = where.job_type
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
        """Claims at once; with a wait, an empty claim waits until something is announced as
        claimable (or the re-check period passes) and claims again, until the wait ends or the
        service shuts down."""
        deadline = time.monotonic() + request.wait_s
        while True:
            generation = self.signal.generation
            claimed = await _shielded(self._claim(request))
            remaining_s = deadline - time.monotonic()
            if claimed or remaining_s <= 0 or self.signal.closed:
                return claimed
            await self.signal.wait(generation, min(remaining_s, self.queue_policy.claim_recheck_s))

    async def _claim(self, request: ClaimRequest) -> list[Job]:
        """Expired leases first (their jobs may be what this claim takes), then the claim. With
        none expired (the usual case) a claim that takes jobs is one statement, no transaction
        around it; one that takes none asks whether expired leases held it back."""
        now = self.clock()
        async with self.store.statements() as statements:
            claimed = await statements.claim(request, now)
            expired = not claimed and await statements.has_expired_leases(now)
        if expired:
            claimed = await self._requeue_expired_and_claim(request, now)
        metrics.CLAIMS.inc(len(claimed))
        return claimed

    async def _requeue_expired_and_claim(self, request: ClaimRequest, now: datetime) -> list[Job]:
        """A claim that took nothing because expired leases held it back: their jobs go back to
        the queue and it claims again, in one transaction."""
        async with self.store.transaction() as tx:
            await self._requeue_expired(tx, now)
            return await tx.claim(request, now)

    async def requeue_expired(self) -> int:
        """The lease sweeper's pass: jobs of dead workers go back to the queue."""
        async with self.store.transaction() as tx:
            expired = await self._requeue_expired(tx, self.clock())
        if expired:
            log.info("leases_expired", jobs=expired)
        return expired

    async def _requeue_expired(self, tx: JobTx, now: datetime) -> int:
        expired_ids = await tx.expired_lease_ids(now)
        if not expired_ids:
            return 0
        # Breaker states, then hold keys, then job rows (the lock order); settle then reads them stable.
        await tx.lock_breaker_states()
        await tx.lock_hold_keys_of(expired_ids)
        requeued = await tx.requeue_expired(expired_ids, now, self.queue_policy.max_lease_expirations)
        if requeued.pending:
            await tx.announce_claimable()
        if requeued.failed:
            log.warning("jobs_failed_as_poison", jobs=len(requeued.failed), max_lease_expirations=self.queue_policy.max_lease_expirations)
        expired = len(requeued.pending) + len(requeued.failed)
        metrics.EXPIRED_LEASES.inc(expired)
        return expired

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_s: float | None) -> list[LeaseRenewal]:
        worker_id, lease_s = validate_worker_id(worker_id), validate_lease(lease_s)
        if not 1 <= len(job_ids) <= MAX_BATCH:
            raise InvalidArgument(f"ids must hold between 1 and {MAX_BATCH} job ids, got {len(job_ids)}")
        job_ids = distinct_ids(list(job_ids), "ids")
        now = self.clock()
        expires = now + timedelta(seconds=lease_s)
        async with self.store.statements() as statements:
            held = await statements.renew(worker_id, job_ids, expires, now)
        return [LeaseRenewal(job_id, expires if job_id in held else None) for job_id in job_ids]

    async def complete_job(self, job_id: str, worker_id: str, call_duration_s: float | None, result: dict | None = None) -> Job:
        finish = Finish.completion(job_id, call_duration_s, result, self.max_payload_bytes)
        return await self._finish_one(validate_worker_id(worker_id), finish)

    async def fail_job(
        self, job_id: str, worker_id: str, error: str, failed_dependency: str, call_duration_s: float | None
    ) -> Job:
        finish = Finish.failure(job_id, call_duration_s, error, failed_dependency)
        return await self._finish_one(validate_worker_id(worker_id), finish)

    async def _finish_one(self, worker_id: str, finish: Finish) -> Job:
        """CompleteJob and FailJob: a batch of one that answers with the job, or says why the
        worker does not hold its lease (FAILED_PRECONDITION; NOT_FOUND for no such job)."""
        [(_, finished_job)] = await self._finishes.submit(FinishGroup(worker_id, True, None), _of_this_call([finish]))
        self.outcomes_written()
        if finished_job is not None:
            return finished_job
        job = await self.get_job(finish.job_id)
        check_lease(job, worker_id, self.clock())
        raise FailedPrecondition(f"the lease of job {job.id} ended before this call")

    async def finish_jobs(self, worker_id: str, finishes: Sequence[Finish], next_claim: ClaimRequest | None = None) -> FinishedBatch:
        """FinishJobs: applies each finish whose lease the worker still holds (in the finishes'
        group commit); once they are committed, makes `next_claim` for the same worker, if any.
        On PostgreSQL, completions alone and a next claim are one statement instead
        (`_complete_and_claim`)."""
        worker_id = validate_worker_id(worker_id)
        finishes = distinct_finishes(list(finishes))
        if next_claim is not None and self.store.postgres and all(f.succeeded for f in finishes):
            done = await _shielded(self._complete_and_claim(worker_id, _of_this_call(finishes), next_claim))
            self.outcomes_written()
            return done
        results = await self._finishes.submit(FinishGroup(worker_id, False, "finishes"), _of_this_call(finishes))
        self.outcomes_written()
        statuses = {f.job_id: status for f, (status, _) in zip(finishes, results) if status is not None}
        return FinishedBatch(statuses, await self._claim_next(next_claim, self._claim(next_claim), []) if next_claim is not None else [])

    async def _complete_and_claim(self, worker_id: str, completions: Sequence[Finish], request: ClaimRequest) -> FinishedBatch:
        """FinishJobs' completions and next claim in one statement (JobTx.complete_held_and_claim:
        one round trip, one connection), not in the finishes' group commit: it is this call's
        alone. The statement applies both or neither, so if it fails the call fails, as a failed
        finish does. Once it has run the completions are committed, and what follows (the
        expired-lease fallback of `_claim`, when it claimed nothing) is the next claim's, under
        `_claim_next`'s rule."""
        now = self.clock()
        async with self.store.statements() as statements:
            completed, claimed = await statements.complete_held_and_claim(worker_id, completions, request, now)
            expired = not claimed and await self._claim_next(request, statements.has_expired_leases(now), False)
        metrics.observe_runs(_runs_of(completed), now)
        if expired:
            claimed = await self._claim_next(request, self._requeue_expired_and_claim(request, now), [])
        metrics.CLAIMS.inc(len(claimed))
        return FinishedBatch({done.job_id: JobStatus.COMPLETED for done in completed}, claimed)

    async def _claim_next(self, request: ClaimRequest, claiming: Awaitable[T], failed: T) -> T:
        """FinishJobs' next claim (`claiming`, or a step of it), as ClaimJobs without a wait makes
        it. Its finishes are committed by now and their results are what the worker must not lose
        (a retried finish would answer LOST), so a failing claim does not fail the call: it is
        logged and counted, and answers `failed` (claims nothing); the worker then goes back to a
        waiting ClaimJobs, which reports the error."""
        try:
            return await _shielded(claiming)
        except Exception:
            log.exception("next_claim_failed", worker_id=request.worker_id, max_jobs=request.max_jobs)
            metrics.NEXT_CLAIM_FAILURES.inc()
            return failed

    async def _finish_group(self, group: FinishGroup, finishes: Sequence[Finish]) -> list[tuple[JobStatus | None, Job | None]]:
        """The finishes of the calls sharing one transaction (a group commit runs it in its own
        task, so a caller that goes away does not cut it short): each one's new status and,
        when asked, job; (None, None) for a lease lost."""
        report = await self._finish(group.worker_id, finishes, respond_with_jobs=group.respond_with_jobs, batch_field=group.batch_field)
        return [(report.statuses.get(f.job_id), report.jobs.get(f.job_id)) for f in finishes]

    async def _finish(
        self, worker_id: str, finishes: Sequence[Finish], *, respond_with_jobs: bool, batch_field: str | None = None
    ) -> FinishReport:
        """One transaction: "set state if still held by this worker" for every finish, set-based.
        Failures first, since they may put jobs back in the queue: breaker states are locked
        before job rows (the lock order). The run times are observed once it committed."""
        now = self.clock()
        failures = [f for f in finishes if not f.succeeded]
        completions = [f for f in finishes if f.succeeded]
        statuses: dict[str, JobStatus] = {}
        jobs: dict[str, Job] = {}
        outcomes: list[Outcome] = []
        runs: list[metrics.Run] = []
        # Completions alone are one statement (JobTx.complete_held): no transaction around it.
        async with self.store.transaction() if failures else self.store.statements() as tx:
            if failures:
                labels = {f.job_id: f"{batch_field}[{i}]: " for i, f in enumerate(finishes)} if batch_field else {}
                outcomes += await self._apply_failures(tx, worker_id, failures, now, statuses, labels, runs)
            if completions:
                # Their successes go to the outbox in the same statement.
                completed = await tx.complete_held(worker_id, completions, now, whole_rows=respond_with_jobs)
                statuses |= {done.job_id: JobStatus.COMPLETED for done in completed}
                runs += _runs_of(completed)
                if respond_with_jobs:
                    jobs |= {job.id: job for job in await tx.jobs_from_rows([done.row for done in completed])}
            # Forwarded to breaker_svc by the outbox forwarder: never lost, never blocking.
            await tx.add_outcomes(outcomes, now)
            if respond_with_jobs and failures:
                jobs |= {job.id: job for job in await tx.load_jobs([f.job_id for f in failures if f.job_id in statuses])}
        metrics.observe_runs(runs, now)
        return FinishReport(statuses, jobs)

    async def _apply_failures(
        self, tx: JobTx, worker_id: str, failures: list[Finish], now: datetime, statuses: dict[str, JobStatus],
        labels: dict[str, str], runs: list[metrics.Run],
    ) -> list[Outcome]:
        """Plans and applies the failures whose lease is held, adding their runs to `runs`;
        `labels` prefix an error with the item it is about (FinishJobs)."""
        await tx.lock_breaker_states()
        await tx.lock_hold_keys_of([f.job_id for f in failures])
        held = {job.id: job for job in await tx.lock_held(worker_id, [f.job_id for f in failures], now)}
        plans, outcomes = {}, []
        for finish in failures:
            job = held.get(finish.job_id)
            if job is None:
                continue  # lease lost: nothing applied
            try:
                provider = check_failed_dependency(job, finish.failed_dependency or "")
            except InvalidArgument as error:  # the whole call fails: nothing is applied
                raise InvalidArgument(labels.get(job.id, "") + error.message) from None
            plans[job.id] = (plan_failure(job, provider, now, self.retry_policy), finish.error)
            if provider is not None and not finish.outcomes_recorded:
                outcomes.append(Outcome(provider, False, finish.call_duration_s, finish.request_id))
        await tx.apply_failures(plans, now)
        runs += [
            (held[job_id].job_type, metrics.RUN_FAILED if plan.status is JobStatus.FAILED else metrics.RUN_RETRIED, held[job_id].claimed_at)
            for job_id, (plan, _) in plans.items()
        ]
        retried = [job_id for job_id, (plan, _) in plans.items() if plan.status is JobStatus.PENDING]
        statuses |= {job_id: plan.status for job_id, (plan, _) in plans.items()}
        statuses |= await tx.statuses_of(retried)  # pending, or paused by a hold
        if retried:
            await tx.announce_claimable(min(plans[job_id][0].run_after for job_id in retried))
        return outcomes

    async def redrive_jobs(self, selector: RedriveSelector) -> int:
        now = self.clock()
        async with self.store.transaction() as tx:
            await tx.lock_breaker_states()
            redriven = await tx.redrive(selector, now)
            if redriven:
                await tx.announce_claimable()
        log.info("jobs_redriven", jobs=len(redriven))
        return len(redriven)

    async def delete_old_finished_jobs(self) -> int:
        """Retention: completed and cancelled jobs older than the retention age go, one bounded
        batch per transaction, so neither a lock nor a transaction grows with the backlog."""
        policy = self.queue_policy
        if policy.retention_s <= 0:
            return 0
        before, deleted = self.clock() - timedelta(seconds=policy.retention_s), 0
        while True:
            async with self.store.transaction() as tx:
                batch = await tx.delete_finished(before, policy.retention_batch)
            deleted += batch
            if batch < policy.retention_batch:
                return deleted
            await asyncio.sleep(0)  # let calls in between batches

    # -- holds ---------------------------------------------------------------------------------

    async def pause_jobs(self, selector: HoldSelector, reason: str) -> int:
        reason = validate_reason(reason)
        async with self.store.transaction() as tx:
            await tx.lock_hold_keys([hold_key(selector.kind, selector.key)], exclusive=True)
            held = await tx.add_pause(selector, reason, self.clock())
        log.info("jobs_paused", kind=selector.kind.value, key=selector.key, jobs=held)
        return held

    async def resume_jobs(self, selector: HoldSelector) -> tuple[int, int]:
        async with self.store.transaction() as tx:
            await tx.lock_breaker_states()
            await tx.lock_hold_keys([hold_key(selector.kind, selector.key)], exclusive=True)
            affected, resumed = await tx.remove_pause(selector, self.clock())
            if resumed:
                await tx.announce_claimable()
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
        # Waits for creates of this dependency's jobs in flight, and makes later ones wait for
        # this transaction (JobTx.lock_hold_keys).
        await tx.lock_hold_keys([hold_key(HoldKind.BREAKER, dependency)], exclusive=True)
        if new.state.blocks_calls or new.state is BreakerState.HALF_OPEN:
            # HALF_OPEN first holds every queued job too: after a reset or a missed event the
            # jobs may never have been held, and only the trial permits may run.
            paused = await tx.hold_dependency(dependency, new.revision, new.state.value, now)
        if new.state is BreakerState.HALF_OPEN:
            released = await tx.release_oldest(dependency, new.half_open_permitted_calls, now)
        elif not new.state.blocks_calls:
            await tx.drop_breaker_holds(dependency)
            released = await tx.release_unheld_of_dependency(dependency, now)
        if released:
            await tx.announce_claimable()
        metrics.PAUSED.labels(HoldKind.BREAKER.value).inc(paused)
        metrics.RESUMED.labels(HoldKind.BREAKER.value).inc(released)
        log.info(
            "breaker_reconciled", dependency=dependency, state=new.state.value,
            from_state=old.state.value if old else None, revision=new.revision, paused=paused, resumed=released,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )
