"""Helpers for job_svc's tests: an in-process job service on a real database, a clock the test
moves, unique names, and bulk loading of jobs for the large reconciliation tests."""

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from job.v1 import job_pb2, job_pb2_grpc
from sqlalchemy import insert, select

from job_svc.app import JobApp
from job_svc.domain import JobStatus, RetryPolicy
from job_svc.settings import JobSettings
from job_svc.tables import job_dependencies, jobs
from services.config import ServerSettings
from tests.support.databases import fresh_postgres_database

# Nothing listens here: breaker_svc is unreachable unless a test says otherwise.
NO_BREAKER = "127.0.0.1:9"


class MovableClock:
    """Real time plus an offset the test advances (leases, backoff)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


def unique(prefix: str = "dep") -> str:
    """A dependency name no other test uses (tests share a database per module)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def job_settings(database_url: str, breaker_target: str = NO_BREAKER, **overrides: object) -> JobSettings:
    settings = JobSettings(
        server=ServerSettings(host="127.0.0.1", port=0, grace_s=1.0, admin_token=None, metrics_port=None, log_level="warning"),
        database_url=database_url,
        breaker_target=breaker_target,
        breaker_stale_after_s=30.0,
        retry_policy=RetryPolicy(base_s=10.0, max_s=80.0),
        max_payload_bytes=1024,
        sweep_interval_s=0.2,
        outbox_batch=50,
        outbox_retry_max_s=0.5,
    )
    return replace(settings, **overrides)


@dataclass
class RunningJobs:
    app: JobApp
    stub: job_pb2_grpc.JobServiceStub
    clock: MovableClock
    channel: grpc.aio.Channel


@asynccontextmanager
async def running_jobs(
    database_url: str, *, background: bool = False, breaker_target: str = NO_BREAKER, **overrides: object
) -> AsyncIterator[RunningJobs]:
    """job_svc in this process on port 0, with a real gRPC channel to it. Without `background`
    the mirror, forwarder and sweeper do not run: tests drive them."""
    clock = MovableClock()
    app = JobApp(job_settings(database_url, breaker_target, **overrides), clock=clock)
    port = await app.start(follow_breakers=background, forward_outcomes=background, housekeeping=background)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield RunningJobs(app, job_pb2_grpc.JobServiceStub(channel), clock, channel)
    finally:
        await channel.close()
        await app.stop()


@asynccontextmanager
async def database_of(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if backend == "postgres":
        async with fresh_postgres_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('job') / 'job.db'}"


# -- requests ----------------------------------------------------------------------------------


def create_request(dependencies: list[str], **fields: object) -> job_pb2.CreateJobRequest:
    fields.setdefault("job_type", "enrich")
    return job_pb2.CreateJobRequest(dependencies=dependencies, **fields)


def claim_request(worker_id: str, dependencies: list[str], max_jobs: int = 10, lease_s: float | None = None) -> job_pb2.ClaimJobsRequest:
    request = job_pb2.ClaimJobsRequest(worker_id=worker_id, dependencies=dependencies, max_jobs=max_jobs)
    if lease_s is not None:
        request.lease_duration.CopyFrom(Duration(seconds=int(lease_s), nanos=int((lease_s % 1) * 1e9)))
    return request


async def create_jobs(stub: job_pb2_grpc.JobServiceStub, dependencies: list[str], count: int, **fields: object) -> list[job_pb2.Job]:
    return [(await stub.CreateJob(create_request(dependencies, **fields))).job for _ in range(count)]


async def expect_error(call: Callable[[], object], code: grpc.StatusCode, contains: str = "") -> str:
    """Awaits the call and returns the error's details; fails unless it ends with `code`."""
    try:
        await call()
    except grpc.aio.AioRpcError as error:
        assert error.code() == code, f"expected {code.name}, got {error.code().name}: {error.details()}"
        assert contains in (error.details() or ""), error.details()
        return error.details() or ""
    raise AssertionError(f"expected {code.name}, the call succeeded")


# -- bulk data ---------------------------------------------------------------------------------


async def bulk_insert_jobs(app: JobApp, dependencies: list[str], count: int, status: JobStatus = JobStatus.PENDING) -> list[str]:
    """Inserts `count` jobs straight into the database (fast; for the large tests)."""
    base = app.jobs.clock() - timedelta(seconds=count)
    ids = [str(uuid.uuid4()) for _ in range(count)]
    rows = [
        {
            "id": job_id, "campaign_id": None, "job_type": "bulk", "payload": {}, "status": status, "attempts": 0,
            "max_attempts": 3, "lease_owner": None, "lease_expires_at": None, "run_after": base,
            "last_error": "", "request_id": None, "created_at": base + timedelta(microseconds=i), "updated_at": base,
        }
        for i, job_id in enumerate(ids)
    ]
    async with app.engine.begin() as connection:
        for start in range(0, count, 5000):
            await connection.execute(insert(jobs), rows[start : start + 5000])
            links = [{"job_id": r["id"], "dependency": d} for r in rows[start : start + 5000] for d in dependencies]
            await connection.execute(insert(job_dependencies), links)
    return ids


async def status_counts(app: JobApp, dependency: str) -> dict[JobStatus, int]:
    """Jobs of one dependency per status, read straight from the database."""
    async with app.store.transaction() as tx:
        return (await tx.counts_by_dependency()).get(dependency, {})


async def job_statuses(app: JobApp, job_ids: list[str]) -> dict[str, JobStatus]:
    async with app.engine.connect() as connection:
        rows = await connection.execute(select(jobs.c.id, jobs.c.status).where(jobs.c.id.in_(job_ids)))
        return {row.id: row.status for row in rows}
