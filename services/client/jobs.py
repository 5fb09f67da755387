"""A thin typed client of job.v1.JobService: what producers and workers call.

    async with JobClient("127.0.0.1:50053") as jobs:
        job = await jobs.create("enrich_lead", ["perplexity"], {"domain": "example.com"})
        job = await jobs.get(job.id)          # job.result once it is completed

Each method is one RPC (`create_many`: one per 1,000 jobs) and returns the generated message (`job.v1.job_pb2`, with type stubs):
a `Job`, a list of them, or the response where it carries more. Errors are
`grpc.aio.AioRpcError` with the service's status code. Calls go through `Caller` (a deadline, a
request id, the bearer token) on a channel that dials TLS from the environment (see `channel`).

UNAVAILABLE is retried with backoff only where repeating cannot do anything twice: reads, lease
renewals, re-drives, and creates, which always carry a `request_id` (`job_request` makes one
when the caller gives none, so a retried create returns the job the first attempt made). Claims,
finishes and cancels are not retried here: the `Worker` decides what a lost answer means.
`redrive` is an admin call: make the client with the ADMIN_TOKEN. `SyncJobClient` is the same
client for callers that are not async (thread-safe).
"""

import asyncio
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from job.v1 import job_pb2 as pb
from job.v1 import job_pb2_grpc

from services.client.calls import ServiceClient
from services.client.sync import SyncFacade

# job.v1's limit on the jobs of one CreateJobs call.
MAX_JOBS_PER_CALL = 1000


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1_000_000_000))
    return value


def struct(values: Mapping[str, Any]) -> Struct:
    """A Struct of a JSON-able mapping (TypeError or ValueError otherwise)."""
    value = Struct()
    value.update(values)
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
) -> pb.CreateJobRequest:
    """A CreateJobRequest; without `request_id`, a fresh one, so that retries are harmless.
    `priority`: lower runs first. `run_at` (an aware datetime) or `delay_s`: a scheduled start."""
    request = pb.CreateJobRequest(
        request_id=request_id or uuid.uuid4().hex,
        campaign_id=campaign_id,
        job_type=job_type,
        dependencies=list(dependencies),
        max_attempts=max_attempts,
        priority=priority,
    )
    if payload:
        request.payload.CopyFrom(struct(payload))
    if run_at is not None:
        request.run_time.FromDatetime(run_at)
    if delay_s is not None:
        request.delay.CopyFrom(duration(delay_s))
    return request


def completion(result: Struct | None = None) -> pb.JobFinish:
    """A FinishJobs item that completes a job and stores `result`; the caller sets its `id`."""
    finish = pb.JobFinish(completion=pb.JobCompletion())
    if result is not None:
        finish.completion.result.CopyFrom(result)
    return finish


def failure(error: str, failed_dependency: str = "") -> pb.JobFinish:
    """A FinishJobs item that fails a job (the caller sets its `id`); naming the provider at
    fault spends no attempt."""
    return pb.JobFinish(failure=pb.JobFailure(error=error, failed_dependency=failed_dependency))


class JobClient(ServiceClient[job_pb2_grpc.JobServiceStub]):
    stub_class = job_pb2_grpc.JobServiceStub

    # -- producers -----------------------------------------------------------------------------

    async def create(self, job_type: str, dependencies: Iterable[str], payload: Mapping[str, Any] | None = None, **fields: Any) -> pb.Job:
        """Creates one job; `fields` are `job_request`'s (request_id, priority, delay_s...)."""
        request = job_request(job_type, dependencies, payload, **fields)
        return (await self.call(self.stub.CreateJob, request, idempotent=True)).job

    async def create_many(
        self, requests: Sequence[pb.CreateJobRequest], *, view: "pb.JobView.ValueType" = pb.JOB_VIEW_FULL, in_flight: int = 4
    ) -> list[pb.Job]:
        """Creates the jobs (make them with `job_request`, which gives each a request id) in
        CreateJobs calls of up to 1,000, `in_flight` of them at a time on this channel, and
        returns them in order. Each call is all or nothing; after an error the same list can be
        sent again: the request ids make the jobs already created come back instead of twice.
        `view=JOB_VIEW_BASIC` answers only each job's id and status."""
        if any(not request.request_id for request in requests):
            raise ValueError("every job of a batch needs a request_id (job_request gives one)")
        if in_flight < 1:
            raise ValueError(f"in_flight must be at least 1, got {in_flight}")
        calls = asyncio.Semaphore(in_flight)

        async def create(part: Sequence[pb.CreateJobRequest]) -> Sequence[pb.Job]:
            async with calls:
                request = pb.CreateJobsRequest(jobs=part, view=view)
                return (await self.call(self.stub.CreateJobs, request, idempotent=True)).jobs

        async with asyncio.TaskGroup() as group:  # the first error cancels the calls not yet answered
            tasks = [group.create_task(create(requests[i : i + MAX_JOBS_PER_CALL])) for i in range(0, len(requests), MAX_JOBS_PER_CALL)]
        return [job for task in tasks for job in task.result()]

    async def get(self, job_id: str) -> pb.Job:
        return (await self.call(self.stub.GetJob, pb.GetJobRequest(id=job_id), idempotent=True)).job

    async def list_page(self, *, page_size: int = 0, page_token: str = "", **filters: Any) -> pb.ListJobsResponse:
        """One page, oldest first; `filters` are ListJobsRequest's (status, job_type, dependency,
        campaign_id)."""
        request = pb.ListJobsRequest(page_size=page_size, page_token=page_token, **filters)
        return await self.call(self.stub.ListJobs, request, idempotent=True)

    async def list_all(self, **filters: Any) -> list[pb.Job]:
        """Every job that matches `filters`, read page after page."""
        found: list[pb.Job] = []
        token = ""
        while True:
            page = await self.list_page(page_size=1000, page_token=token, **filters)
            found += page.jobs
            token = page.next_page_token
            if not token:
                return found

    async def cancel(self, job_id: str) -> pb.Job:
        return (await self.call(self.stub.CancelJob, pb.CancelJobRequest(id=job_id), idempotent=False)).job

    async def queue_status(self) -> pb.GetQueueStatusResponse:
        return await self.call(self.stub.GetQueueStatus, pb.GetQueueStatusRequest(), idempotent=True)

    # -- workers -------------------------------------------------------------------------------

    async def claim(
        self,
        worker_id: str,
        max_jobs: int,
        *,
        lease_s: float | None = None,
        wait_s: float = 0.0,
        job_type: str = "",
        dependencies: Iterable[str] = (),
    ) -> list[pb.Job]:
        """Leases up to `max_jobs` jobs. With `wait_s` (up to 60), an empty queue answers when a
        job becomes claimable or the wait ends (the call's deadline is stretched by the wait)."""
        request = pb.ClaimJobsRequest(worker_id=worker_id, max_jobs=max_jobs, job_type=job_type, dependencies=list(dependencies))
        if lease_s is not None:
            request.lease_duration.CopyFrom(duration(lease_s))
        if wait_s:
            request.wait.CopyFrom(duration(wait_s))
        response = await self.call(self.stub.ClaimJobs, request, idempotent=False, timeout_s=self.call.timeout_s + wait_s)
        return list(response.jobs)

    async def complete(self, job_id: str, worker_id: str, result: Mapping[str, Any] | None = None) -> pb.Job:
        """Ends a claim with success and stores `result`; FAILED_PRECONDITION if the lease is gone."""
        request = pb.CompleteJobRequest(id=job_id, worker_id=worker_id)
        if result is not None:
            request.result.CopyFrom(struct(result))
        return (await self.call(self.stub.CompleteJob, request, idempotent=False)).job

    async def fail(self, job_id: str, worker_id: str, error: str, *, failed_dependency: str = "") -> pb.Job:
        """Ends a claim with failure; with `failed_dependency` (the provider at fault) the job
        spends no attempt and is paused while that provider's breaker is open."""
        request = pb.FailJobRequest(id=job_id, worker_id=worker_id, error=error, failed_dependency=failed_dependency)
        return (await self.call(self.stub.FailJob, request, idempotent=False)).job

    async def finish(self, worker_id: str, finishes: Sequence[pb.JobFinish]) -> list[pb.JobFinishResult]:
        """Completes and fails 1..1000 claims (items from `completion()` and `failure()`, `id`
        set): one result per item, in order, HELD (applied) or LOST (nothing applied)."""
        request = pb.FinishJobsRequest(worker_id=worker_id, finishes=finishes)
        return list((await self.call(self.stub.FinishJobs, request, idempotent=False)).results)

    async def finish_and_claim(
        self,
        worker_id: str,
        finishes: Sequence[pb.JobFinish],
        max_jobs: int,
        *,
        lease_s: float | None = None,
        job_type: str = "",
        dependencies: Iterable[str] = (),
    ) -> pb.FinishJobsResponse:
        """`finish`, then in the same call a claim of up to `max_jobs`, as `claim` without a wait
        makes it: one round trip per cycle. The response holds `results` (as `finish` returns
        them) and `claimed_jobs` (empty when nothing was claimable: wait with `claim`). The
        finishes are applied first; a claim that fails after them claims nothing and the results
        still come back."""
        claim = pb.NextClaim(max_jobs=max_jobs, job_type=job_type, dependencies=list(dependencies))
        if lease_s is not None:
            claim.lease_duration.CopyFrom(duration(lease_s))
        request = pb.FinishJobsRequest(worker_id=worker_id, finishes=finishes, next_claim=claim)
        return await self.call(self.stub.FinishJobs, request, idempotent=False)

    async def renew(self, worker_id: str, job_ids: Sequence[str], lease_s: float, *, timeout_s: float | None = None) -> list[pb.LeaseRenewal]:
        """Extends 1..1000 leases to `lease_s` from now: one answer per id, HELD or LOST."""
        request = pb.RenewLeasesRequest(worker_id=worker_id, ids=job_ids, lease_duration=duration(lease_s))
        return list((await self.call(self.stub.RenewLeases, request, idempotent=True, timeout_s=timeout_s)).renewals)

    # -- operators -----------------------------------------------------------------------------

    async def redrive(self, *, ids: Sequence[str] = (), **selectors: Any) -> int:
        """Puts failed or cancelled jobs back in the queue (admin); `selectors` are
        RedriveJobsRequest's other fields (status, job_type, campaign_id). Returns how many."""
        request = pb.RedriveJobsRequest(ids=ids, **selectors)
        return (await self.call(self.stub.RedriveJobs, request, idempotent=True)).redriven_count

    async def pause(self, *, campaign_id: str = "", dependency: str = "", reason: str = "") -> int:
        """Adds a hold to a campaign's or a dependency's jobs; returns how many carry it."""
        request = pb.PauseJobsRequest(campaign_id=campaign_id, dependency=dependency, reason=reason)
        return (await self.call(self.stub.PauseJobs, request, idempotent=True)).affected_count

    async def resume(self, *, campaign_id: str = "", dependency: str = "") -> pb.ResumeJobsResponse:
        request = pb.ResumeJobsRequest(campaign_id=campaign_id, dependency=dependency)
        return await self.call(self.stub.ResumeJobs, request, idempotent=True)


class SyncJobClient(SyncFacade[JobClient]):
    """`JobClient` with blocking methods, for threads: `SyncJobClient("127.0.0.1:50053").get(id)`."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(lambda: JobClient(target, **options))
