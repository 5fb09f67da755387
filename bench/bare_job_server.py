"""A benchmark fixture, not a service: job.v1.JobService on a bare grpc.aio server, for
bench.job_queue's "bare grpc.aio" side, the most any Python grpc.aio server could reach on its
paths.

It stores nothing: the queue is a count of jobs created and not yet claimed. Creates answer jobs
with fresh ids (UUIDv7s, made as job_svc makes them; JOB_VIEW_BASIC: id and status only), claims
answer up to `max_jobs` jobs built as job_svc builds them (payload {"n": i}, timestamps, lease)
while the count lasts, and a claim with `wait` on an empty queue waits for the next create;
completions and finishes answer as for a held lease (a completed job without its payload: none
is kept), and FinishJobs' `next_claim` claims as ClaimJobs without a wait does. It has job_svc's grpc server options and garbage-collector tuning and no interceptors,
and serves grpc.health.v1 only so that launchers can wait for it
(tests.support.processes.ServiceProcess). Calls the bench does not make are UNIMPLEMENTED.

    BARE_JOB_PORT=50070 python -m bench.bare_job_server    # until SIGTERM or SIGINT
"""

import asyncio
import os
import signal
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from job.v1 import job_pb2, job_pb2_grpc

from job_svc.domain import DEFAULT_LEASE_S, DEFAULT_MAX_ATTEMPTS, MAX_BATCH, new_job_ids
from services.protoconv import timestamp
from services.server import SERVER_OPTIONS, tune_garbage_collection

PORT_VARIABLE = "BARE_JOB_PORT"


async def refuse_batch_size(items: int, context: grpc.aio.ServicerContext) -> None:
    """job.v1's batch limit, so that bench.job_queue's probe sees the batch calls served."""
    if not 1 <= items <= MAX_BATCH:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"1..{MAX_BATCH} items, not {items}")


class BareJobService(job_pb2_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.queued = 0
        self.claimed = 0  # numbers the claimed jobs' payloads
        # Claimed and completed jobs carry the last create's type and dependencies.
        self.job_type = ""
        self.dependencies: list[str] = []
        # Replaced at every create: a waiting claim holds the one it started with.
        self.created = asyncio.Event()

    def _add(self, last: job_pb2.CreateJobRequest, count: int) -> None:
        self.queued += count
        self.job_type, self.dependencies = last.job_type, list(last.dependencies)
        self.created.set()
        self.created = asyncio.Event()

    async def CreateJob(self, request: job_pb2.CreateJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CreateJobResponse:
        self._add(request, 1)
        return job_pb2.CreateJobResponse(job=new_job(request, new_job_ids(1)[0], timestamp(datetime.now(UTC))))

    async def CreateJobs(self, request: job_pb2.CreateJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.CreateJobsResponse:
        await refuse_batch_size(len(request.jobs), context)
        self._add(request.jobs[-1], len(request.jobs))
        ids = new_job_ids(len(request.jobs))
        if request.view == job_pb2.JOB_VIEW_BASIC:
            return job_pb2.CreateJobsResponse(jobs=[job_pb2.Job(id=id_, status=job_pb2.JOB_STATUS_PENDING) for id_ in ids])
        created = timestamp(datetime.now(UTC))
        return job_pb2.CreateJobsResponse(jobs=[new_job(item, id_, created) for item, id_ in zip(request.jobs, ids)])

    async def ClaimJobs(self, request: job_pb2.ClaimJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.ClaimJobsResponse:
        if not self.queued and request.wait.ToNanoseconds():
            try:
                await asyncio.wait_for(self.created.wait(), request.wait.ToNanoseconds() / 1e9)
            except TimeoutError:
                return job_pb2.ClaimJobsResponse()
        return job_pb2.ClaimJobsResponse(jobs=self._claim(request.worker_id, request.max_jobs, request))

    def _claim(self, worker_id: str, max_jobs: int, request: job_pb2.ClaimJobsRequest | job_pb2.NextClaim) -> list[job_pb2.Job]:
        """Up to `max_jobs` of the queued jobs, leased for the request's lease_duration."""
        count = min(max_jobs, self.queued)
        self.queued -= count
        now = datetime.now(UTC)
        lease_s = request.lease_duration.ToNanoseconds() / 1e9 if request.HasField("lease_duration") else DEFAULT_LEASE_S
        updated, lease_expires = timestamp(now), timestamp(now + timedelta(seconds=lease_s))
        jobs = []
        for n, id_ in enumerate(new_job_ids(count), start=self.claimed):
            job = job_pb2.Job(
                id=id_, job_type=self.job_type, dependencies=self.dependencies,
                status=job_pb2.JOB_STATUS_PROCESSING, attempts=1, max_attempts=DEFAULT_MAX_ATTEMPTS,
                lease_owner=worker_id, lease_expire_time=lease_expires, run_after_time=updated, create_time=updated,
                update_time=updated,
            )
            job.payload.update({"n": n})
            jobs.append(job)
        self.claimed += count
        return jobs

    async def CompleteJob(self, request: job_pb2.CompleteJobRequest, context: grpc.aio.ServicerContext) -> job_pb2.CompleteJobResponse:
        now = timestamp(datetime.now(UTC))
        job = job_pb2.Job(
            id=request.id, job_type=self.job_type, dependencies=self.dependencies, status=job_pb2.JOB_STATUS_COMPLETED, attempts=1,
            max_attempts=DEFAULT_MAX_ATTEMPTS, run_after_time=now, create_time=now, update_time=now,
        )
        return job_pb2.CompleteJobResponse(job=job)

    async def FinishJobs(self, request: job_pb2.FinishJobsRequest, context: grpc.aio.ServicerContext) -> job_pb2.FinishJobsResponse:
        await refuse_batch_size(len(request.finishes), context)
        claim = request.next_claim
        return job_pb2.FinishJobsResponse(
            results=[
                job_pb2.JobFinishResult(id=f.id, lease_result=job_pb2.LEASE_RESULT_HELD, status=job_pb2.JOB_STATUS_COMPLETED)
                for f in request.finishes
            ],
            claimed_jobs=self._claim(request.worker_id, claim.max_jobs, claim) if request.HasField("next_claim") else [],
        )


def new_job(request: job_pb2.CreateJobRequest, job_id: str, created: Timestamp) -> job_pb2.Job:
    job = job_pb2.Job(
        id=job_id, job_type=request.job_type, dependencies=request.dependencies, status=job_pb2.JOB_STATUS_PENDING,
        max_attempts=request.max_attempts or DEFAULT_MAX_ATTEMPTS, priority=request.priority, run_after_time=created,
        create_time=created, update_time=created,
    )
    job.payload.CopyFrom(request.payload)
    return job


async def serve(port: int) -> None:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    job_pb2_grpc.add_JobServiceServicer_to_server(BareJobService(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    tune_garbage_collection()
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await server.stop(0)


if __name__ == "__main__":
    asyncio.run(serve(int(os.environ[PORT_VARIABLE])))
