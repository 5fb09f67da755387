"""`JobClient`: job.v1.JobService for callers, thin and typed.

    async with JobClient("127.0.0.1:50053") as jobs:
        job = await jobs.create_job("enrich_lead", ["perplexity"], {"domain": "example.com"})
        job = await jobs.get_job(job.id)          # job.result once it is completed

Every method is one RPC and returns the response's message (`job_pb2.Job`, a list of them, or
the response itself where it carries more). Calls go through `Caller`: a deadline, a request id,
the bearer token (`SERVICE_TOKEN` in `from_env`) and TLS from the environment (see `channel`).
UNAVAILABLE is retried with backoff only where repeating cannot do anything twice: reads, and
creates, which always carry a `request_id` (one is made for the call when the caller gives
none, so a retried create returns the job the first attempt made). Claims and finishes are not
retried here: the `Worker` decides what a lost answer means.

`sync_job_client(...)` is the same client for callers that are not async (thread-safe).
"""

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from job.v1 import job_pb2, job_pb2_grpc

from services.client.calls import Caller
from services.client.channel import open_channel
from services.client.sync import SyncFacade

DEFAULT_TARGET = "127.0.0.1:50053"


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1_000_000_000))
    return value


def job_request(
    job_type: str,
    dependencies: Iterable[str],
    payload: Mapping[str, Any] | None = None,
    *,
    request_id: str | None = None,
    campaign_id: str = "",
    max_attempts: int = 0,
    priority: int = 0,
    run_at: datetime | None = None,
    delay_s: float | None = None,
) -> job_pb2.CreateJobRequest:
    """A CreateJobRequest; without `request_id`, a fresh one, so that retries are harmless.
    `priority`: lower runs first. `run_at` (aware datetime) or `delay_s`: a scheduled start."""
    request = job_pb2.CreateJobRequest(
        request_id=request_id or uuid.uuid4().hex,
        campaign_id=campaign_id,
        job_type=job_type,
        dependencies=list(dependencies),
        max_attempts=max_attempts,
        priority=priority,
    )
    if payload:
        request.payload.update(payload)
    if run_at is not None:
        request.run_time.FromDatetime(run_at)
    if delay_s is not None:
        request.delay.CopyFrom(duration(delay_s))
    return request


def completion(result: Mapping[str, Any] | None = None) -> job_pb2.JobFinish:
    """A FinishJobs item that completes a job, storing `result`; `id` is set by the caller."""
    finish = job_pb2.JobFinish(completion=job_pb2.JobCompletion())
    if result is not None:
        finish.completion.result.CopyFrom(result if isinstance(result, Struct) else _struct(result))
    return finish


def failure(error: str, failed_dependency: str = "") -> job_pb2.JobFinish:
    """A FinishJobs item that fails a job; naming a provider spends no attempt."""
    return job_pb2.JobFinish(failure=job_pb2.JobFailure(error=error, failed_dependency=failed_dependency))


def _struct(values: Mapping[str, Any]) -> Struct:
    struct = Struct()
    struct.update(values)
    return struct


class JobClient:
    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        token: str | None = None,
        admin_token: str | None = None,
        timeout_s: float = 10.0,
        **channel: Any,
    ) -> None:
        """`token`: SERVICE_TOKEN for state-changing calls; `admin_token` for `redrive_jobs`;
        `channel`: `tls=` and `options=` of `open_channel`."""
        self._channel = open_channel(target, **channel)
        self._stub = job_pb2_grpc.JobServiceStub(self._channel)
        self._call = Caller(token=token, timeout_s=timeout_s)
        self._admin_call = Caller(token=admin_token, timeout_s=timeout_s)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, **options: Any) -> "JobClient":
        """Dials JOB_TARGET with SERVICE_TOKEN and ADMIN_TOKEN (and TLS_* through the channel)."""
        return cls(
            environ.get("JOB_TARGET", DEFAULT_TARGET),
            token=environ.get("SERVICE_TOKEN") or None,
            admin_token=environ.get("ADMIN_TOKEN") or None,
            **options,
        )

    async def __aenter__(self) -> "JobClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    # -- creating and reading ------------------------------------------------------------------

    async def create_job(self, job_type: str, dependencies: Iterable[str], payload: Mapping[str, Any] | None = None, **fields: Any) -> job_pb2.Job:
        """Creates one job (see `job_request` for the optional fields)."""
        request = job_request(job_type, dependencies, payload, **fields)
        return (await self._call(self._stub.CreateJob, request, idempotent=True)).job

    async def create_jobs(self, requests: Sequence[job_pb2.CreateJobRequest]) -> list[job_pb2.Job]:
        """Creates 1..1000 jobs in one call, all or nothing (build them with `job_request`, which
        gives each a request id, so a retried batch returns the jobs the first one made)."""
        request = job_pb2.CreateJobsRequest(jobs=requests)
        if any(not item.request_id for item in request.jobs):
            raise ValueError("every job of a batch needs a request_id (job_request gives one)")
        return list((await self._call(self._stub.CreateJobs, request, idempotent=True)).jobs)

    async def get_job(self, job_id: str) -> job_pb2.Job:
        return (await self._call(self._stub.GetJob, job_pb2.GetJobRequest(id=job_id), idempotent=True)).job

    async def list_jobs(self, *, page_size: int = 0, page_token: str = "", **filters: Any) -> job_pb2.ListJobsResponse:
        """One page; `filters` are ListJobsRequest's fields (status, campaign_id, dependency...)."""
        request = job_pb2.ListJobsRequest(page_size=page_size, page_token=page_token, **filters)
        return await self._call(self._stub.ListJobs, request, idempotent=True)

    async def cancel_job(self, job_id: str) -> job_pb2.Job:
        return (await self._call(self._stub.CancelJob, job_pb2.CancelJobRequest(id=job_id), idempotent=False)).job

    async def queue_status(self) -> job_pb2.GetQueueStatusResponse:
        return await self._call(self._stub.GetQueueStatus, job_pb2.GetQueueStatusRequest(), idempotent=True)

    # -- the queue (what a worker calls) -------------------------------------------------------

    async def claim_jobs(
        self,
        worker_id: str,
        max_jobs: int,
        *,
        lease_s: float | None = None,
        wait_s: float = 0.0,
        job_type: str = "",
        dependencies: Iterable[str] = (),
    ) -> list[job_pb2.Job]:
        """Leases up to `max_jobs` jobs; with `wait_s` (up to 60), waits for one to become
        claimable when none is (the deadline is stretched by the wait)."""
        request = job_pb2.ClaimJobsRequest(worker_id=worker_id, max_jobs=max_jobs, job_type=job_type, dependencies=list(dependencies))
        if lease_s is not None:
            request.lease_duration.CopyFrom(duration(lease_s))
        if wait_s:
            request.wait.CopyFrom(duration(wait_s))
        response = await self._call(self._stub.ClaimJobs, request, idempotent=False, timeout_s=self._call.timeout_s + wait_s)
        return list(response.jobs)

    async def complete_job(self, job_id: str, worker_id: str, result: Mapping[str, Any] | None = None) -> job_pb2.Job:
        request = job_pb2.CompleteJobRequest(id=job_id, worker_id=worker_id)
        if result is not None:
            request.result.update(result)
        return (await self._call(self._stub.CompleteJob, request, idempotent=False)).job

    async def fail_job(self, job_id: str, worker_id: str, error: str, *, failed_dependency: str = "") -> job_pb2.Job:
        request = job_pb2.FailJobRequest(id=job_id, worker_id=worker_id, error=error, failed_dependency=failed_dependency)
        return (await self._call(self._stub.FailJob, request, idempotent=False)).job

    async def finish_jobs(self, worker_id: str, finishes: Sequence[job_pb2.JobFinish], *, timeout_s: float | None = None) -> list[job_pb2.JobFinishResult]:
        """Completes and fails 1..1000 claims (items from `completion()`/`failure()` with their
        `id` set); one result per item, in order: HELD (applied) or LOST (not applied)."""
        request = job_pb2.FinishJobsRequest(worker_id=worker_id, finishes=finishes)
        return list((await self._call(self._stub.FinishJobs, request, idempotent=False, timeout_s=timeout_s)).results)

    async def renew_leases(self, worker_id: str, job_ids: Sequence[str], lease_s: float, *, timeout_s: float | None = None) -> list[job_pb2.LeaseRenewal]:
        """Extends 1..1000 leases to `lease_s` from now; one answer per id: HELD or LOST."""
        request = job_pb2.RenewLeasesRequest(worker_id=worker_id, ids=job_ids, lease_duration=duration(lease_s))
        return list((await self._call(self._stub.RenewLeases, request, idempotent=True, timeout_s=timeout_s)).renewals)

    async def redrive_jobs(self, *, ids: Sequence[str] = (), **selectors: Any) -> int:
        """Puts failed or cancelled jobs back in the queue (an admin call: `admin_token`);
        `selectors` are RedriveJobsRequest's other fields. Returns how many."""
        request = job_pb2.RedriveJobsRequest(ids=ids, **selectors)
        return (await self._admin_call(self._stub.RedriveJobs, request, idempotent=True)).redriven_count


def sync_job_client(target: str = DEFAULT_TARGET, **options: Any) -> SyncFacade[JobClient]:
    """`JobClient` with blocking methods, safe to share between threads."""
    return SyncFacade(lambda: JobClient(target, **options))
