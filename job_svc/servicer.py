"""job.v1.JobService over gRPC: transport only. Each method turns the request into the domain's
validated command, calls a use case and turns the result into the response. Domain errors
become status codes in the shared interceptor (services.interceptors)."""

from datetime import datetime

import grpc
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from job.v1 import job_pb2, job_pb2_grpc

from job_svc.domain import ClaimRequest, Hold, HoldSelector, Job, JobStatus, NewJob
from job_svc.usecases import JobUseCases, QueueStatus
from services.errors import InvalidArgument

SERVICE_NAME = job_pb2.DESCRIPTOR.services_by_name["JobService"].full_name


def status_to_proto(status: JobStatus) -> int:
    return job_pb2.JobStatus.Value(f"JOB_STATUS_{status.name}")


def status_from_proto(value: int) -> JobStatus | None:
    """None for UNSPECIFIED (any status in filters)."""
    if value == job_pb2.JOB_STATUS_UNSPECIFIED:
        return None
    try:
        return JobStatus[job_pb2.JobStatus.Name(value).removeprefix("JOB_STATUS_")]
    except (ValueError, KeyError):
        raise InvalidArgument(f"status {value} is not a known JobStatus") from None


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _seconds(duration: Duration) -> float:
    return duration.ToNanoseconds() / 1e9


def hold_to_proto(hold: Hold) -> job_pb2.PauseHold:
    return job_pb2.PauseHold(
        kind=job_pb2.HoldKind.Value(f"HOLD_KIND_{hold.kind.name}"),
        dependency=hold.dependency,
        revision=hold.revision,
        reason=hold.reason,
        create_time=_timestamp(hold.created_at),
    )


def job_to_proto(job: Job) -> job_pb2.Job:
    message = job_pb2.Job(
        id=job.id,
        campaign_id=job.campaign_id or "",
        job_type=job.job_type,
        dependencies=list(job.dependencies),
        status=status_to_proto(job.status),
        attempts=job.attempts,
        max_attempts=job.max_attempts,
        lease_owner=job.lease_owner or "",
        holds=[hold_to_proto(h) for h in job.holds],
        pause_reason=job.pause_reason,
        last_error=job.last_error,
        run_after_time=_timestamp(job.run_after),
        create_time=_timestamp(job.created_at),
        update_time=_timestamp(job.updated_at),
    )
    message.payload.update(job.payload)
    if job.lease_expires_at is not None:
        message.lease_expire_time.CopyFrom(_timestamp(job.lease_expires_at))
    return message


def _counts(counts: dict[JobStatus, int]) -> dict[str, int]:
    return {status.value: counts.get(status, 0) for status in JobStatus}


def queue_status_to_proto(status: QueueStatus) -> job_pb2.GetQueueStatusResponse:
    message = job_pb2.GetQueueStatusResponse(
        counts_by_status=_counts(status.counts),
        dependencies=[
            job_pb2.DependencyQueueStatus(dependency=d.dependency, breaker_state=d.state.to_proto(), counts_by_status=_counts(d.counts))
            for d in status.dependencies
        ],
        blocked_dependencies=status.blocked,
        applied_revision=status.applied_revision,
        breaker_state_stale=status.stale,
    )
    if status.breaker_contact is not None:
        message.breaker_contact_time.CopyFrom(_timestamp(status.breaker_contact))
    return message


class JobServicer(job_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobUseCases) -> None:
        self._jobs = jobs

    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CreateJobResponse:
        new = NewJob.validated(
            request_id=request.request_id,
            campaign_id=request.campaign_id,
            job_type=request.job_type,
            dependencies=list(request.dependencies),
            payload=json_format.MessageToDict(request.payload),
            max_attempts=request.max_attempts,
            max_payload_bytes=self._jobs.max_payload_bytes,
        )
        return job_pb2.CreateJobResponse(job=job_to_proto(await self._jobs.create_job(new)))

    async def GetJob(self, request: job_pb2.GetJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.GetJobResponse:
        return job_pb2.GetJobResponse(job=job_to_proto(await self._jobs.get_job(request.id)))

    async def ListJobs(self, request: job_pb2.ListJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ListJobsResponse:
        page = await self._jobs.list_jobs(
            requested_size=request.page_size,
            page_token=request.page_token,
            status=status_from_proto(request.status),
            campaign_id=request.campaign_id,
            dependency=request.dependency,
        )
        return job_pb2.ListJobsResponse(jobs=[job_to_proto(j) for j in page.jobs], next_page_token=page.next_page_token)

    async def CancelJob(self, request: job_pb2.CancelJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CancelJobResponse:
        return job_pb2.CancelJobResponse(job=job_to_proto(await self._jobs.cancel_job(request.id)))

    async def ClaimJobs(self, request: job_pb2.ClaimJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ClaimJobsResponse:
        claim = ClaimRequest.validated(
            worker_id=request.worker_id,
            dependencies=list(request.dependencies),
            max_jobs=request.max_jobs,
            lease_s=_seconds(request.lease_duration) if request.HasField("lease_duration") else None,
            job_type=request.job_type,
        )
        return job_pb2.ClaimJobsResponse(jobs=[job_to_proto(j) for j in await self._jobs.claim_jobs(claim)])

    async def CompleteJob(self, request: job_pb2.CompleteJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CompleteJobResponse:
        duration_s = _seconds(request.call_duration) if request.HasField("call_duration") else None
        job = await self._jobs.complete_job(request.id, request.worker_id, duration_s)
        return job_pb2.CompleteJobResponse(job=job_to_proto(job))

    async def FailJob(self, request: job_pb2.FailJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.FailJobResponse:
        duration_s = _seconds(request.call_duration) if request.HasField("call_duration") else None
        job = await self._jobs.fail_job(request.id, request.worker_id, request.error, request.failed_dependency, duration_s)
        return job_pb2.FailJobResponse(job=job_to_proto(job))

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
