"""Faults through real calls, with real processes: Redis killed and restarted, each service
SIGKILLed mid-traffic and restarted. Callers see OK or UNAVAILABLE (never INTERNAL, UNKNOWN or
CANCELLED), the others recover with no restart, nothing is lost and no outcome counts twice.
(Cut PostgreSQL connections: tests/integration/test_storage_faults.py.)"""

import asyncio
from collections import Counter
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.job import claim_request, create_request
from tests.support.polling import eventually
from tests.support.redis_server import OwnRedis

DEPENDENCY = "apollo"
# Channels that redial a restarted peer within a fraction of a second (grpc's default waits 1 s+).
FAST_REDIAL = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 300)]
BREAKER_ENV = {"BREAKER_STORE": "redis", "BREAKER_HEARTBEAT_S": "0.3", "BREAKER_DEFAULT_WINDOW_SIZE": "10000"}
JOB_ENV = {"JOB_OUTBOX_RETRY_MAX_S": "0.3", "JOB_BREAKER_STALE_AFTER_S": "3"}


async def breaker_calls(breakers: breaker_pb2_grpc.BreakerServiceStub) -> int:
    """Outcomes breaker_svc has counted for DEPENDENCY (its window holds them all)."""
    return (await breakers.GetBreaker(breaker_pb2.GetBreakerRequest(dependency=DEPENDENCY))).breaker.metrics.calls


async def completed_jobs(jobs: job_pb2_grpc.JobServiceStub) -> int:
    status = await jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    by_dependency = {entry.dependency: entry.counts_by_status for entry in status.dependencies}
    return by_dependency.get(DEPENDENCY, {}).get("completed", 0)


async def finish_one(jobs: job_pb2_grpc.JobServiceStub, worker: str) -> str:
    """Creates, claims and completes one job; returns its id."""
    job = (await jobs.CreateJob(create_request([DEPENDENCY]))).job
    for claimed in (await jobs.ClaimJobs(claim_request(worker, [DEPENDENCY], max_jobs=1))).jobs:
        await jobs.CompleteJob(job_pb2.CompleteJobRequest(id=claimed.id, worker_id=worker))
    return job.id


async def test_redis_killed_and_restarted_outcomes_wait_and_then_count_once(service_process, tmp_path: Path) -> None:
    redis = OwnRedis(tmp_path, durable=True)
    await redis.start()
    try:
        breaker = service_process("breaker_svc", {**BREAKER_ENV, "REDIS_URL": redis.url}, port_env="BREAKER_PORT")
        job_env = {**JOB_ENV, "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}", "BREAKER_TARGET": breaker.address}
        job_svc = service_process("job_svc", job_env, port_env="JOB_PORT")
        async with (
            grpc.aio.insecure_channel(breaker.address, options=FAST_REDIAL) as b_channel,
            grpc.aio.insecure_channel(job_svc.address, options=FAST_REDIAL) as j_channel,
        ):
            breakers, jobs = breaker_pb2_grpc.BreakerServiceStub(b_channel), job_pb2_grpc.JobServiceStub(j_channel)
            for _ in range(5):
                await finish_one(jobs, "w")
            await eventually(lambda: _equals(breaker_calls(breakers), 5), timeout_s=20)

            redis.crash()
            outcome = breaker_pb2.RecordOutcomeRequest(dependency=DEPENDENCY, result=breaker_pb2.CALL_RESULT_SUCCESS)
            try:
                await breakers.RecordOutcome(outcome)
                raise AssertionError("recorded with Redis down")
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
            for _ in range(5):  # job calls do not need breaker_svc: their outcomes wait in the outbox
                await finish_one(jobs, "w")

            await redis.start()  # the append-only file brings every write back
            await eventually(lambda: _equals(breaker_calls(breakers), 10), timeout_s=30)
            await breakers.RecordOutcome(outcome)
            assert await breaker_calls(breakers) == 11
            await eventually(lambda: _fresh(jobs), timeout_s=20)  # job_svc's breaker stream is back
    finally:
        redis.stop()


async def test_each_service_sigkilled_mid_traffic_recovers_and_loses_or_double_counts_nothing(
    service_process, postgres_url: str, tmp_path: Path, redis_prefix: str
) -> None:
    breaker = service_process("breaker_svc", {**BREAKER_ENV, "BREAKER_REDIS_PREFIX": redis_prefix}, port_env="BREAKER_PORT")
    job_svc = service_process("job_svc", {**JOB_ENV, "JOB_DATABASE_URL": postgres_url, "BREAKER_TARGET": breaker.address}, port_env="JOB_PORT")
    campaign_env = {"CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}", "BREAKER_TARGET": breaker.address, "JOB_TARGET": job_svc.address}
    campaign_svc = service_process("campaign_svc", campaign_env, port_env="CAMPAIGN_PORT")
    codes: Counter[str] = Counter()
    created_jobs: list[str] = []
    created_campaigns: list[str] = []
    running = asyncio.Event()
    running.set()

    async with (
        grpc.aio.insecure_channel(breaker.address, options=FAST_REDIAL) as b_channel,
        grpc.aio.insecure_channel(job_svc.address, options=FAST_REDIAL) as j_channel,
        grpc.aio.insecure_channel(campaign_svc.address, options=FAST_REDIAL) as c_channel,
    ):
        breakers, jobs = breaker_pb2_grpc.BreakerServiceStub(b_channel), job_pb2_grpc.JobServiceStub(j_channel)
        campaigns = campaign_pb2_grpc.CampaignServiceStub(c_channel)

        async def answered(call, kept: list[str]) -> None:  # type: ignore[no-untyped-def]
            try:
                kept.append(await call())
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1
                await asyncio.sleep(0.05)

        async def job_traffic(worker: str) -> None:
            while running.is_set():
                await answered(lambda: finish_one(jobs, worker), created_jobs)

        async def campaign_traffic() -> None:
            async def create() -> str:
                request = campaign_pb2.CreateCampaignRequest(name="c", dependencies=[DEPENDENCY])
                return (await campaigns.CreateCampaign(request)).campaign.id

            while running.is_set():
                await answered(create, created_campaigns)

        async def faults() -> None:
            for victim in (job_svc, breaker, campaign_svc):
                await asyncio.sleep(0.7)
                victim.kill()
                await asyncio.sleep(0.3)
                await asyncio.to_thread(victim.start)
            await asyncio.sleep(0.7)
            running.clear()

        await asyncio.gather(faults(), job_traffic("w1"), job_traffic("w2"), campaign_traffic())

        assert set(codes) <= {"OK", "UNAVAILABLE"}, codes
        assert codes["UNAVAILABLE"] > 0 and codes["OK"] > 0, codes
        # Nothing lost: every create that answered OK is there.
        for job_id in created_jobs:
            await jobs.GetJob(job_pb2.GetJobRequest(id=job_id))
        for campaign_id in created_campaigns:
            await campaigns.GetCampaign(campaign_pb2.GetCampaignRequest(id=campaign_id))
        # Counted once: breaker_svc counts exactly the jobs completed, though job_svc and
        # breaker_svc were each killed with outcomes on their way.
        completed = await completed_jobs(jobs)
        assert completed > 0
        await eventually(lambda: _equals(breaker_calls(breakers), completed), timeout_s=30)


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    """Whether the call answers `expected`; UNAVAILABLE (a restarted store not reconnected yet)
    is "not yet", like any other answer."""
    try:
        return (await value) == expected
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return False


async def _fresh(jobs: job_pb2_grpc.JobServiceStub) -> bool:
    return not (await jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())).breaker_state_stale
