"""job_svc's domain: statuses, holds, limits, the retry policy and the rules of each transition.

Pure: no grpc, no SQL. Rules that refuse something raise `services.errors` exceptions, which
the server interceptor maps to status codes.
"""

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, TypeVar

from services.errors import FailedPrecondition, InvalidArgument
from services.validation import (
    shown,
    validate_call_duration,
    validate_dependency_list,
    validate_dependency_name,
    validate_request_id,
    validate_text,
    validate_uuid,
)

T = TypeVar("T")
U = TypeVar("U")


class JobStatus(str, Enum):
    """Where a job is in its life; the values are the database enum `job_status`."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PAUSED = "paused"

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
# Not finished: may be cancelled, and carries manual and campaign holds.
UNFINISHED_STATUSES = (JobStatus.PENDING, JobStatus.PAUSED, JobStatus.PROCESSING)
# Waiting in the queue (not leased): what breaker holds are put on. A processing job finishes
# its call; it is held when it comes back to the queue.
QUEUED_STATUSES = (JobStatus.PENDING, JobStatus.PAUSED)


class HoldKind(str, Enum):
    """Why a job is held; the values are the database enum `hold_kind`."""

    BREAKER = "breaker"
    MANUAL = "manual"
    CAMPAIGN = "campaign"


# A hold's `dependency` for campaign holds (part of the holds' primary key, so not NULL).
CAMPAIGN_HOLD_KEY = ""

MAX_JOB_TYPE_LENGTH = 100
DEFAULT_MAX_ATTEMPTS = 3
MAX_ATTEMPTS_LIMIT = 100
DEFAULT_LEASE_S = 30.0
MIN_LEASE_S = 1.0
MAX_LEASE_S = 3600.0
MAX_CLAIM_JOBS = 1000
MAX_WORKER_ID_LENGTH = 200
MAX_REASON_LENGTH = 500
# Longer failure messages are cut, not refused: a worker must always be able to end its claim.
MAX_ERROR_LENGTH = 10_000
MIN_PRIORITY, MAX_PRIORITY = -100, 100
MAX_START_AHEAD = timedelta(days=366)
# Items of one CreateJobs, FinishJobs or RenewLeases call, and ids of one RedriveJobs call.
MAX_BATCH = 1000
MAX_CLAIM_WAIT_S = 60.0


@dataclass(frozen=True)
class Hold:
    kind: HoldKind
    dependency: str
    revision: int
    reason: str
    created_at: datetime

    def describe(self) -> str:
        if self.kind is HoldKind.BREAKER:
            return f"breaker of {self.dependency} is {self.reason or 'open'} (revision {self.revision})"
        if self.kind is HoldKind.MANUAL:
            return f"{self.dependency} paused by an operator" + (f": {self.reason}" if self.reason else "")
        return "campaign paused" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Job:
    id: str
    campaign_id: str | None
    job_type: str
    dependencies: tuple[str, ...]
    payload: dict[str, Any]
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    run_after: datetime
    last_error: str
    holds: tuple[Hold, ...]
    created_at: datetime
    updated_at: datetime
    provider_failures: int = 0
    priority: int = 0
    result: dict[str, Any] | None = None
    lease_expirations: int = 0
    claimed_at: datetime | None = None  # when last leased (None: never, or before it was recorded)

    @property
    def pause_reason(self) -> str:
        return "; ".join(hold.describe() for hold in self.holds)


# A UUIDv7's (RFC 9562) fixed bits, version 7 and the RFC variant, and its last 62 random bits.
_UUID7_BITS = 0x7 << 76 | 0b10 << 62
_RAND_B = (1 << 62) - 1


def new_job_ids(count: int) -> list[str]:
    """`count` UUIDv7s: Unix milliseconds in the first 48 bits, then 74 random bits. Time-ordered,
    so new jobs go onto the right edge of the B-trees keyed by job id (jobs_pkey,
    pk_job_dependencies) rather than onto random pages; one read of the OS's randomness for all."""
    stamp = (time.time_ns() // 1_000_000) << 80 | _UUID7_BITS
    noise = os.urandom(10 * count)
    ids = []
    for start in range(0, 10 * count, 10):
        bits = int.from_bytes(noise[start : start + 10])  # 80: the top 12 are rand_a, the low 62 rand_b
        digits = f"{stamp | (bits >> 68) << 64 | bits & _RAND_B:032x}"
        ids.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return ids


@dataclass(frozen=True)
class NewJob:
    request_id: str | None
    campaign_id: str | None
    job_type: str
    dependencies: tuple[str, ...]
    payload: dict[str, Any]
    payload_json: str  # the payload as JSON text, encoded once by validation, stored as is
    max_attempts: int
    priority: int = 0
    run_at: datetime | None = None  # scheduled start (run_time)
    delay_s: float | None = None  # scheduled start (delay)

    @classmethod
    def validated(
        cls,
        *,
        request_id: str,
        campaign_id: str,
        job_type: str,
        dependencies: list[str],
        payload: dict[str, Any],
        max_attempts: int,
        max_payload_bytes: int,
        priority: int = 0,
        run_at: datetime | None = None,
        delay_s: float | None = None,
    ) -> "NewJob":
        payload_json = validate_json_object(payload, "payload", max_payload_bytes)
        if max_attempts < 0 or max_attempts > MAX_ATTEMPTS_LIMIT:
            raise InvalidArgument(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT} (0 for {DEFAULT_MAX_ATTEMPTS}), got {max_attempts}")
        if not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidArgument(f"priority must be between {MIN_PRIORITY} and {MAX_PRIORITY}, got {priority}")
        if delay_s is not None and delay_s > MAX_START_AHEAD.total_seconds():
            raise InvalidArgument(f"delay must be at most {MAX_START_AHEAD.days} days, got {delay_s:g}s")
        return cls(
            request_id=validate_request_id(request_id),
            campaign_id=optional_uuid(campaign_id, "campaign_id"),
            job_type=validate_text(job_type, "job_type", min_length=1, max_length=MAX_JOB_TYPE_LENGTH),
            dependencies=validate_dependency_list(list(dependencies)),
            payload=payload,
            payload_json=payload_json,
            max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
            priority=priority,
            run_at=run_at,
            delay_s=delay_s,
        )

    def run_after(self, now: datetime) -> datetime:
        """When the job may first be claimed: now, or its scheduled start (never before now, so a
        past `run_time` does not jump the queue)."""
        if self.delay_s is not None:
            return now + timedelta(seconds=self.delay_s)
        if self.run_at is not None:
            if self.run_at > now + MAX_START_AHEAD:
                raise InvalidArgument(f"run_time must be at most {MAX_START_AHEAD.days} days ahead, got {self.run_at.isoformat()}")
            return max(self.run_at, now)
        return now


# Built once: json.dumps with options builds a new encoder on every call.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def validate_json_object(value: dict[str, Any], field: str, max_bytes: int) -> str:
    """A caller's JSON object (payload, result): storable and within the size cap. Returns it as
    compact JSON text (ASCII: other characters are escaped)."""
    try:
        encoded = _COMPACT_JSON.encode(value)
    except ValueError:
        raise InvalidArgument(f"{field} must not contain NaN or Infinity (JSON has no such numbers)") from None
    if "\\u0000" in encoded:  # neither PostgreSQL's JSON nor text can hold a NUL
        raise InvalidArgument(f"{field} must not contain NUL characters")
    size = len(encoded.encode())
    if size > max_bytes:
        raise InvalidArgument(f"{field} must be at most {max_bytes} bytes as JSON, got {size}")
    return encoded


def validated_batch(items: list[T], field: str, validate: Callable[[T], U]) -> list[U]:
    """Validates 1..MAX_BATCH items; the first invalid one is refused naming its index."""
    if not 1 <= len(items) <= MAX_BATCH:
        raise InvalidArgument(f"{field} must hold between 1 and {MAX_BATCH} items, got {len(items)}")
    validated: list[U] = []
    for index, item in enumerate(items):
        try:
            validated.append(validate(item))
        except InvalidArgument as error:
            raise InvalidArgument(f"{field}[{index}]: {error.message}") from None
    return validated


def validated_field(field: str, validate: Callable[[], T]) -> T:
    """Validates a nested message (`validate` builds its command); an error names the field's
    path, `next_claim.max_jobs`, since every check's message starts with the field it is about."""
    try:
        return validate()
    except InvalidArgument as error:
        raise InvalidArgument(f"{field}.{error.message}") from None


def distinct_ids(ids: list[str], field: str) -> list[str]:
    """Job ids of one batch: each a UUID, none twice."""
    validated: dict[str, None] = {}
    for index, raw in enumerate(ids):
        job_id = validate_uuid(raw, f"{field}[{index}]")
        if job_id in validated:
            raise InvalidArgument(f"{field}[{index}]: job {job_id} is named twice")
        validated[job_id] = None
    return list(validated)


def created_job(job_id: str, new: NewJob, now: datetime) -> Job:
    """A job as CreateJob stores it, when nothing holds it."""
    return Job(
        id=job_id, campaign_id=new.campaign_id, job_type=new.job_type, dependencies=new.dependencies,
        payload=new.payload, status=JobStatus.PENDING, attempts=0, max_attempts=new.max_attempts,
        lease_owner=None, lease_expires_at=None, run_after=new.run_after(now), last_error="", holds=(),
        created_at=now, updated_at=now, priority=new.priority,
    )


def finished(job: Job, status: JobStatus, now: datetime) -> Job:
    """The job after it reached a final status: no lease, no holds."""
    return replace(job, status=status, lease_owner=None, lease_expires_at=None, holds=(), updated_at=now)


def optional_uuid(value: str, field: str) -> str | None:
    return validate_uuid(value, field) if value else None


@dataclass(frozen=True)
class ClaimRequest:
    worker_id: str
    dependencies: tuple[str, ...]  # empty: any job
    max_jobs: int
    lease_s: float
    job_type: str | None
    wait_s: float = 0.0

    @classmethod
    def validated(
        cls, *, worker_id: str, dependencies: list[str], max_jobs: int, lease_s: float | None, job_type: str,
        wait_s: float = 0.0,
    ) -> "ClaimRequest":
        if not 1 <= max_jobs <= MAX_CLAIM_JOBS:
            raise InvalidArgument(f"max_jobs must be between 1 and {MAX_CLAIM_JOBS}, got {max_jobs}")
        if not 0 <= wait_s <= MAX_CLAIM_WAIT_S:
            raise InvalidArgument(f"wait must be between 0s and {MAX_CLAIM_WAIT_S:g}s, got {wait_s:g}s")
        return cls(
            worker_id=validate_worker_id(worker_id),
            dependencies=validate_dependency_list(list(dependencies)) if dependencies else (),
            max_jobs=max_jobs,
            lease_s=validate_lease(lease_s),
            job_type=validate_text(job_type, "job_type", max_length=MAX_JOB_TYPE_LENGTH) or None,
            wait_s=wait_s,
        )


def validate_lease(lease_s: float | None) -> float:
    lease_s = DEFAULT_LEASE_S if lease_s is None else lease_s
    if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
        raise InvalidArgument(f"lease_duration must be between 1s and 1h, got {lease_s:g}s")
    return lease_s


@dataclass(frozen=True)
class Finish:
    """The end of one claim: a completion (with its result) or a failure."""

    job_id: str
    call_duration_s: float | None
    succeeded: bool
    result_json: str | None = None  # the result as JSON text, encoded once by validation, stored as is
    error: str = ""
    failed_dependency: str | None = None
    outcomes_recorded: bool = False  # the worker told breaker_svc itself: forward nothing
    # The call that ended the claim: the outcomes forwarded for it carry its id to breaker_svc
    # (finishes of several calls may share one transaction).
    request_id: str | None = None

    @classmethod
    def completion(
        cls, job_id: str, call_duration_s: float | None, result: dict[str, Any] | None, max_result_bytes: int, *,
        outcomes_recorded: bool = False,
    ) -> "Finish":
        result_json = validate_json_object(result, "result", max_result_bytes) if result is not None else None
        duration_s = validate_call_duration(call_duration_s, "call_duration")
        return cls(validate_uuid(job_id), duration_s, True, result_json=result_json, outcomes_recorded=outcomes_recorded)

    @classmethod
    def failure(
        cls, job_id: str, call_duration_s: float | None, error: str, failed_dependency: str, *, outcomes_recorded: bool = False
    ) -> "Finish":
        provider = validate_dependency_name(failed_dependency, "failed_dependency") if failed_dependency else None
        duration_s = validate_call_duration(call_duration_s, "call_duration")
        return cls(
            validate_uuid(job_id), duration_s, False, error=truncate_error(error), failed_dependency=provider,
            outcomes_recorded=outcomes_recorded,
        )


def distinct_finishes(finishes: list[Finish]) -> list[Finish]:
    seen: set[str] = set()
    for index, finish in enumerate(finishes):
        if finish.job_id in seen:
            raise InvalidArgument(f"finishes[{index}]: job {finish.job_id} is named twice")
        seen.add(finish.job_id)
    return finishes


@dataclass(frozen=True)
class RedriveSelector:
    """Failed or cancelled jobs to put back in the queue; the selectors combine (AND)."""

    ids: tuple[str, ...]
    statuses: tuple[JobStatus, ...]
    job_type: str | None
    campaign_id: str | None

    @classmethod
    def validated(cls, *, ids: list[str], status: "JobStatus | None", job_type: str, campaign_id: str) -> "RedriveSelector":
        if len(ids) > MAX_BATCH:
            raise InvalidArgument(f"ids may name at most {MAX_BATCH} jobs, got {len(ids)}")
        if status is not None and status not in REDRIVABLE_STATUSES:
            raise InvalidArgument(f"status must be failed or cancelled (or unspecified for both), got {status.value}")
        if not (ids or status or job_type or campaign_id):
            raise InvalidArgument("name the jobs to re-drive: set ids, status, job_type or campaign_id")
        return cls(
            ids=tuple(distinct_ids(list(ids), "ids")),
            statuses=(status,) if status is not None else REDRIVABLE_STATUSES,
            job_type=validate_text(job_type, "job_type", max_length=MAX_JOB_TYPE_LENGTH) or None,
            campaign_id=optional_uuid(campaign_id, "campaign_id"),
        )


REDRIVABLE_STATUSES = (JobStatus.FAILED, JobStatus.CANCELLED)


def validate_worker_id(worker_id: str) -> str:
    return validate_text(worker_id, "worker_id", min_length=1, max_length=MAX_WORKER_ID_LENGTH)


@dataclass(frozen=True)
class HoldSelector:
    """The jobs a PauseJobs/ResumeJobs call is about: a campaign's (campaign hold) or a
    dependency's (manual hold keyed by that dependency)."""

    kind: HoldKind
    key: str

    @classmethod
    def validated(cls, *, campaign_id: str, dependency: str) -> "HoldSelector":
        if bool(campaign_id) == bool(dependency):
            raise InvalidArgument("set exactly one of campaign_id and dependency")
        if campaign_id:
            return cls(HoldKind.CAMPAIGN, validate_uuid(campaign_id, "campaign_id"))
        return cls(HoldKind.MANUAL, validate_dependency_name(dependency))

    @property
    def hold_dependency(self) -> str:
        """The value of the holds' `dependency` column for this selector."""
        return CAMPAIGN_HOLD_KEY if self.kind is HoldKind.CAMPAIGN else self.key


def validate_reason(reason: str) -> str:
    return validate_text(reason, "reason", max_length=MAX_REASON_LENGTH)


@dataclass(frozen=True)
class QueuePolicy:
    """How the queue treats leases, waiting claims and history (JobSettings)."""

    max_lease_expirations: int = 3
    claim_recheck_s: float = 2.0
    retention_s: float = 7 * 86400.0  # 0: keep finished jobs for ever
    retention_batch: int = 1000


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: base, 2*base, 4*base ... capped at max."""

    base_s: float = 1.0
    max_s: float = 300.0

    def delay_s(self, attempts: int) -> float:
        return min(self.max_s, self.base_s * 2 ** max(attempts - 1, 0))


@dataclass(frozen=True)
class FailurePlan:
    """What a failure does to a job: its next status, attempts and earliest next run."""

    status: JobStatus  # PENDING (the queue then holds it if a dependency is blocked) or FAILED
    attempts: int
    run_after: datetime
    provider_failures: int


def plan_failure(job: Job, failed_dependency: str | None, now: datetime, policy: RetryPolicy) -> FailurePlan:
    """A provider's fault spends no attempt: the job goes back to the queue (paused there if the
    provider's breaker is blocked), waiting twice as long after each such failure, so a provider
    failing below its breaker's threshold is not hammered. The job's own fault spends an
    attempt, until none is left."""
    if failed_dependency is not None:
        provider_failures = job.provider_failures + 1
        run_after = now + timedelta(seconds=policy.delay_s(provider_failures))
        return FailurePlan(JobStatus.PENDING, job.attempts, run_after, provider_failures)
    attempts = job.attempts + 1
    if attempts >= job.max_attempts:
        return FailurePlan(JobStatus.FAILED, attempts, job.run_after, job.provider_failures)
    run_after = now + timedelta(seconds=policy.delay_s(attempts))
    return FailurePlan(JobStatus.PENDING, attempts, run_after, job.provider_failures)


def check_failed_dependency(job: Job, failed_dependency: str) -> str | None:
    if not failed_dependency:
        return None
    validate_dependency_name(failed_dependency, "failed_dependency")
    if failed_dependency not in job.dependencies:
        raise InvalidArgument(
            f"failed_dependency {shown(failed_dependency)} is not a dependency of job {job.id}"
            f" (its dependencies: {', '.join(job.dependencies)})"
        )
    return failed_dependency


def check_lease(job: Job, worker_id: str, now: datetime) -> None:
    """Only the worker holding a processing job's lease, before it ends, may end or renew it."""
    if job.status is not JobStatus.PROCESSING:
        raise FailedPrecondition(
            f"job {job.id} is {job.status.value}, not processing: only a claimed job can be completed or failed"
        )
    if job.lease_owner != worker_id:
        raise FailedPrecondition(f"job {job.id} is leased to another worker, not to {shown(worker_id)}")
    if job.lease_expires_at is not None and job.lease_expires_at < now:
        raise FailedPrecondition(f"the lease of job {job.id} expired at {job.lease_expires_at.isoformat()}: the job goes back to the queue")


def poison_error(max_lease_expirations: int) -> tuple[str, str]:
    """`last_error` of a job failed because its leases kept expiring (poison protection), as
    the text before and after the last lease owner's id."""
    return (
        f"lease expired {max_lease_expirations} times without a result, last held by ",
        ": failed so that a job that crashes or hangs its workers is not retried for ever",
    )


def check_cancellable(job: Job) -> None:
    if job.status.is_final:
        raise FailedPrecondition(
            f"job {job.id} is already {job.status.value}; only pending, paused or processing jobs can be cancelled"
        )


def truncate_error(error: str) -> str:
    """A worker's error text as stored: bounded, and with NULs (which PostgreSQL text cannot
    hold) replaced, since it is free-form diagnostics rather than input to refuse."""
    error = error.replace("\x00", "\ufffd")
    return error if len(error) <= MAX_ERROR_LENGTH else error[: MAX_ERROR_LENGTH - 1] + "…"
