"""job_svc's domain: statuses, holds, limits, the retry policy and the rules of each transition.

Pure: no grpc, no SQL. Rules that refuse something raise `services.errors` exceptions, which
the server interceptor maps to status codes.
"""

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from services.errors import FailedPrecondition, InvalidArgument
from services.validation import (
    validate_dependency_list,
    validate_dependency_name,
    validate_request_id,
    validate_text,
    validate_uuid,
)


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

    @property
    def pause_reason(self) -> str:
        return "; ".join(hold.describe() for hold in self.holds)


def new_job_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class NewJob:
    request_id: str | None
    campaign_id: str | None
    job_type: str
    dependencies: tuple[str, ...]
    payload: dict[str, Any]
    max_attempts: int

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
    ) -> "NewJob":
        encoded = json.dumps(payload, separators=(",", ":"))
        if "\\u0000" in encoded:  # neither PostgreSQL's JSON nor text can hold a NUL
            raise InvalidArgument("payload must not contain NUL characters")
        size = len(encoded.encode())
        if size > max_payload_bytes:
            raise InvalidArgument(f"payload must be at most {max_payload_bytes} bytes as JSON, got {size}")
        if max_attempts < 0 or max_attempts > MAX_ATTEMPTS_LIMIT:
            raise InvalidArgument(f"max_attempts must be between 1 and {MAX_ATTEMPTS_LIMIT} (0 for {DEFAULT_MAX_ATTEMPTS}), got {max_attempts}")
        return cls(
            request_id=validate_request_id(request_id),
            campaign_id=optional_uuid(campaign_id, "campaign_id"),
            job_type=validate_text(job_type, "job_type", min_length=1, max_length=MAX_JOB_TYPE_LENGTH),
            dependencies=validate_dependency_list(list(dependencies)),
            payload=payload,
            max_attempts=max_attempts or DEFAULT_MAX_ATTEMPTS,
        )


def created_job(job_id: str, new: NewJob, now: datetime) -> Job:
    """A job as CreateJob stores it, when nothing holds it."""
    return Job(
        id=job_id, campaign_id=new.campaign_id, job_type=new.job_type, dependencies=new.dependencies,
        payload=new.payload, status=JobStatus.PENDING, attempts=0, max_attempts=new.max_attempts,
        lease_owner=None, lease_expires_at=None, run_after=now, last_error="", holds=(), created_at=now, updated_at=now,
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

    @classmethod
    def validated(
        cls, *, worker_id: str, dependencies: list[str], max_jobs: int, lease_s: float | None, job_type: str
    ) -> "ClaimRequest":
        if not 1 <= max_jobs <= MAX_CLAIM_JOBS:
            raise InvalidArgument(f"max_jobs must be between 1 and {MAX_CLAIM_JOBS}, got {max_jobs}")
        lease_s = DEFAULT_LEASE_S if lease_s is None else lease_s
        if not MIN_LEASE_S <= lease_s <= MAX_LEASE_S:
            raise InvalidArgument(f"lease_duration must be between 1s and 1h, got {lease_s:g}s")
        return cls(
            worker_id=validate_worker_id(worker_id),
            dependencies=validate_dependency_list(list(dependencies)) if dependencies else (),
            max_jobs=max_jobs,
            lease_s=lease_s,
            job_type=validate_text(job_type, "job_type", max_length=MAX_JOB_TYPE_LENGTH) or None,
        )


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
            f"failed_dependency {failed_dependency!r} is not a dependency of job {job.id}"
            f" (its dependencies: {', '.join(job.dependencies)})"
        )
    return failed_dependency


def check_lease(job: Job, worker_id: str) -> None:
    """Only the worker holding a processing job's lease may end it."""
    if job.status is not JobStatus.PROCESSING:
        raise FailedPrecondition(
            f"job {job.id} is {job.status.value}, not processing: only a claimed job can be completed or failed"
        )
    if job.lease_owner != worker_id:
        raise FailedPrecondition(f"job {job.id} is leased to another worker, not to {worker_id!r}")


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
