"""job.v1.JobService over gRPC: transport only. Each method turns the request into the domain's
validated command, calls a use case and turns the result into the response. Domain errors
become status codes in the shared interceptor (services.interceptors)."""

from collections.abc import Callable
from datetime import UTC, datetime

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from job.v1 import job_pb2, job_pb2_grpc

from job_svc.domain import (
    ClaimRequest, Finish, Hold, HoldKind, HoldSelector, Job, JobStatus, NewJob, RedriveSelector, validate_worker_id, validated_batch,
    validated_field,
)
from job_svc.usecases import JobUseCases, QueueStatus
from services.auth import access_table
from services.errors import InvalidArgument
from services.protoconv import ProtoEnum, json_object, seconds, timestamp
from services.watch import BREAKER_STATE

SERVICE_NAME = job_pb2.DESCRIPTOR.services_by_name["JobService"].full_name
ACCESS = access_table(
    job_pb2.DESCRIPTOR.services_by_name["JobService"],
    open_calls=("GetJob", "ListJobs", "GetQueueStatus"),
    service_calls=(
        "CreateJob", "CreateJobs", "CancelJob", "ClaimJobs", "CompleteJob", "FailJob", "FinishJobs", "RenewLeases",
        "PauseJobs", "ResumeJobs",
    ),
    admin_calls=("RedriveJobs",),
)


JOB_STATUS = ProtoEnum(job_pb2.JobStatus, JobStatus, "JOB_STATUS_")
HOLD_KIND = ProtoEnum(job_pb2.HoldKind, HoldKind, "HOLD_KIND_")


def hold_to_proto(hold: Hold) -> job_pb2.PauseHold:
    return job_pb2.PauseHold(
        kind=HOLD_KIND.to_proto(hold.kind),
        dependency=hold.dependency,
        revision=hold.revision,
        reason=hold.reason,
        create_time=timestamp(hold.created_at),
    )


def job_to_proto(job: Job) -> job_pb2.Job:
    created = timestamp(job.created_at)
    message = job_pb2.Job(
        id=job.id,
        campaign_id=job.campaign_id or "",
        job_type=job.job_type,
        dependencies=list(job.dependencies),
        status=JOB_STATUS.to_proto(job.status),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        lease_owner=job.lease_owner or "",
        holds=[hold_to_proto(h) for h in job.holds],
        pause_reason=job.pause_reason,
        last_error=job.last_error,
        run_after_time=_same_or_own(job.run_after, job.created_at, created),
        create_time=created,
        update_time=_same_or_own(job.updated_at, job.created_at, created),
        priority=job.priority,
        lease_expirations=job.lease_expirations,
    )
    message.payload.update(job.payload)
    if job.result is not None:
        message.result.update(job.result)
    if job.lease_expires_at is not None:
        message.lease_expire_time.CopyFrom(timestamp(job.lease_expires_at))
    return message


def _same_or_own(moment: datetime, created_at: datetime, created: Timestamp | None) -> Timestamp | None:
    """A new job's run-after and update times are its creation time: that Timestamp is reused."""
    return created if moment == created_at else timestamp(moment)


def basic_job_to_proto(job: Job) -> job_pb2.Job:
    """JOB_VIEW_BASIC: only the id and the status."""
    return job_pb2.Job(id=job.id, status=JOB_STATUS.to_proto(job.status))


def job_view(view: int) -> Callable[[Job], job_pb2.Job]:
    """How a request's `view` (AIP-157's partial responses) turns each job into the answer."""
    if view in (job_pb2.JOB_VIEW_UNSPECIFIED, job_pb2.JOB_VIEW_FULL):
        return job_to_proto
    if view == job_pb2.JOB_VIEW_BASIC:
        return basic_job_to_proto
    raise InvalidArgument(f"view {view} is not a known JobView")


def _optional_seconds(message: object, field: str) -> float | None:
    return seconds(getattr(message, field), field) if message.HasField(field) else None  # type: ignore[attr-defined]


def new_job(request: job_pb2.CreateJobRequest, max_payload_bytes: int) -> NewJob:
    start = request.WhichOneof("start")
    return NewJob.validated(
        request_id=request.request_id,
        campaign_id=request.campaign_id,
        job_type=request.job_type,
        dependencies=list(request.dependencies),
        payload=json_object(request.payload, "payload"),
        max_attempts=request.max_attempts,
        max_payload_bytes=max_payload_bytes,
        priority=request.priority,
        run_at=_run_time(request.run_time) if start == "run_time" else None,
        delay_s=seconds(request.delay, "delay") if start == "delay" else None,
    )


def _run_time(stamp: Timestamp) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise InvalidArgument(f"run_time is not a valid Timestamp (seconds={stamp.seconds}, nanos={stamp.nanos})") from None


def finish(request: job_pb2.JobFinish, max_result_bytes: int) -> Finish:
    outcome = request.WhichOneof("outcome")
    duration_s = _optional_seconds(request, "call_duration")
    recorded = request.outcomes_recorded
    if outcome == "completion":
        result = json_object(request.completion.result, "result") if request.completion.HasField("result") else None
        return Finish.completion(request.id, duration_s, result, max_result_bytes, outcomes_recorded=recorded)
    if outcome == "failure":
        failure = request.failure
        return Finish.failure(request.id, duration_s, failure.error, failure.failed_dependency, outcomes_recorded=recorded)
    raise InvalidArgument("set completion or failure")


def next_claim(request: job_pb2.FinishJobsRequest) -> ClaimRequest | None:
    """FinishJobs' `next_claim`, if set: ClaimJobs' claim for the request's worker, no wait."""
    if not request.HasField("next_claim"):
        return None
    worker_id = validate_worker_id(request.worker_id)  # first: an error names the request's own field
    claim = request.next_claim
    return validated_field("next_claim", lambda: ClaimRequest.validated(
        worker_id=worker_id,
        dependencies=list(claim.dependencies),
        max_jobs=claim.max_jobs,
        lease_s=_optional_seconds(claim, "lease_duration"),
        job_type=claim.job_type,
    ))


def _counts(counts: dict[JobStatus, int]) -> dict[str, int]:
    return {status.value: counts.get(status, 0) for status in JobStatus}


def queue_status_to_proto(status: QueueStatus) -> job_pb2.GetQueueStatusResponse:
    message = job_pb2.GetQueueStatusResponse(
        counts_by_status=_counts(status.counts),
        dependencies=[
            job_pb2.DependencyQueueStatus(dependency=d.dependency, breaker_state=BREAKER_STATE.to_proto(d.state), counts_by_status=_counts(d.counts))
            for d in status.dependencies
        ],
        blocked_dependencies=status.blocked,
        paused_jobs_by_hold={kind.value: count for kind, count in status.paused_by_hold.items()},
        applied_revision=status.applied_revision,
        breaker_state_stale=status.stale,
    )
    if status.breaker_contact is not None:
        message.breaker_contact_time.CopyFrom(timestamp(status.breaker_contact))
    return message


def _finish_result(job_id: str, status: JobStatus | None) -> job_pb2.JobFinishResult:
    if status is None:
        return job_pb2.JobFinishResult(id=job_id, lease_result=job_pb2.LEASE_RESULT_LOST)
    return job_pb2.JobFinishResult(id=job_id, lease_result=job_pb2.LEASE_RESULT_HELD, status=JOB_STATUS.to_proto(status))


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobUseCases) -> None:
        self._jobs = jobs

    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CreateJobResponse:
        new = new_job(request, self._jobs.max_payload_bytes)
        return job_pb2.CreateJobResponse(job=job_to_proto(await self._jobs.create_job(new)))

    async def CreateJobs(self, request: job_pb2.CreateJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.CreateJobsResponse:
        to_proto = job_view(request.view)
        batch = validated_batch(list(request.jobs), "jobs", lambda item: new_job(item, self._jobs.max_payload_bytes))
        return job_pb2.CreateJobsResponse(jobs=[to_proto(j) for j in await self._jobs.create_jobs(batch)])

    async def GetJob(self, request: job_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.GetJobResponse:
        return job_pb2.GetJobResponse(job=job_to_proto(await self._jobs.get_job(request.id)))

    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ListJobsResponse:
        page = await self._jobs.list_jobs(
            requested_size=request.page_size,
            page_token=request.page_token,
            status=JOB_STATUS.from_proto(request.status, "status"),
            campaign_id=request.campaign_id,
            dependency=request.dependency,
            job_type=request.job_type,
        )
        return job_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in page.jobs], next_page_token=page.next_page_token)

    async def CancelJob(self, request: job_pb2.CancelJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CancelJobResponse:
        return job_pb2.CancelJobResponse(job=job_to_proto(await self._jobs.cancel_job(request.id)))

    async def ClaimJobs(self, request: job_pb2.ClaimJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ClaimJobsResponse:
        claim = ClaimRequest.validated(
            worker_id=request.worker_id,
            dependencies=list(request.dependencies),
            max_jobs=request.max_jobs,
            lease_s=_optional_seconds(request, "lease_duration"),
            job_type=request.job_type,
            wait_s=_optional_seconds(request, "wait") or 0.0,
        )
        return job_pb2.ClaimJobsResponse(jobs=[job_to_proto(j) for j in await self._jobs.claim_jobs(claim)])

    async def CompleteJob(self, request: job_pb2.CompleteJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CompleteJobResponse:
        result = json_object(request.result, "result") if request.HasField("result") else None
        job = await self._jobs.complete_job(request.id, request.worker_id, _optional_seconds(request, "call_duration"), result)
        return job_pb2.CompleteJobResponse(job=job_to_proto(job))

    async def FailJob(self, request: job_pb2.FailJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.FailJobResponse:
        duration_s = _optional_seconds(request, "call_duration")
        job = await self._jobs.fail_job(request.id, request.worker_id, request.error, request.failed_dependency, duration_s)
        return job_pb2.FailJobResponse(job=job_to_proto(job))

    async def FinishJobs(self, request: job_pb2.FinishJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.FinishJobsResponse:
        finishes = validated_batch(list(request.finishes), "finishes", lambda item: finish(item, self._jobs.max_payload_bytes))
        done = await self._jobs.finish_jobs(request.worker_id, finishes, next_claim(request))
        return job_pb2.FinishJobsResponse(
            results=[_finish_result(f.job_id, done.statuses.get(f.job_id)) for f in finishes],
            claimed_jobs=[job_to_proto(j) for j in done.claimed],
        )

    async def RenewLeases(self, request: job_pb2.RenewLeasesRequest, context: grpc.aio.ServicerContext) -> job_pb2.RenewLeasesResponse:
        renewals = await self._jobs.renew_leases(request.worker_id, list(request.ids), _optional_seconds(request, "lease_duration"))
        return job_pb2.RenewLeasesResponse(
            renewals=[
                job_pb2.LeaseRenewal(id=r.job_id, lease_result=job_pb2.LEASE_RESULT_HELD, lease_expire_time=timestamp(r.lease_expires_at))
                if r.lease_expires_at is not None
                else job_pb2.LeaseRenewal(id=r.job_id, lease_result=job_pb2.LEASE_RESULT_LOST)
                for r in renewals
            ]
        )

    async def RedriveJobs(self, request: job_pb2.RedriveJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.RedriveJobsResponse:
        selector = RedriveSelector.validated(
            ids=list(request.ids), status=JOB_STATUS.from_proto(request.status, "status"),
            job_type=request.job_type, campaign_id=request.campaign_id,
        )
        return job_pb2.RedriveJobsResponse(redriven_count=await self._jobs.redrive_jobs(selector))

    async def PauseJobs(self, request: job_pb2.PauseJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.PauseJobsResponse:
        selector = HoldSelector.validated(campaign_id=request.campaign_id, dependency=request.dependency)
        return job_pb2.PauseJobsResponse(affected_count=await self._jobs.pause_jobs(selector, request.reason))

    async def ResumeJobs(self, request: job_pb2.ResumeJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ResumeJobsResponse:
        selector = HoldSelector.validated(campaign_id=request.campaign_id, dependency=request.dependency)
        affected, resumed = await self._jobs.resume_jobs(selector)
        return job_pb2.ResumeJobsResponse(affected_count=affected, resumed_count=resumed)

    async def GetQueueStatus(
        self, request: job_pb2.GetQueueStatusRequest, context: grpc.aio.ServicerContext
    ) -> job_pb2.GetQueueStatusResponse:
        return queue_status_to_proto(await self._jobs.queue_status())
