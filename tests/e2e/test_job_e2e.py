"""job_svc end to end, with real processes: breaker_svc (in-memory) and job_svc on PostgreSQL,
talking over gRPC only. Workers report provider failures to job_svc, which forwards them to the
breaker; the breaker's transitions come back over its stream and pause or release the jobs."""

from collections import Counter

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.batches import in_batches
from tests.support.job import claim_request, create_request
from tests.support.polling import eventually

BREAKER_ENV = {
    "BREAKER_STORE": "memory",
    "BREAKER_HEARTBEAT_S": "0.5",
    "ADMIN_TOKEN": "",
    "BREAKER_DEFAULT_WINDOW_SIZE": "10",
    "BREAKER_DEFAULT_MINIMUM_CALLS": "5",
    "BREAKER_DEFAULT_FAILURE_RATE_THRESHOLD": "50",
    "BREAKER_DEFAULT_OPEN_WAIT_S": "3",
    "BREAKER_DEFAULT_HALF_OPEN_PERMITTED_CALLS": "3",
}
DOWN, UP = "perplexity", "openai"
P = job_pb2


async def all_jobs(stub: job_pb2_grpc.JobServiceStub, **filters: object) -> list[job_pb2.Job]:
    jobs, token = [], ""
    while True:
        page = await stub.ListJobs(job_pb2.ListJobsRequest(page_size=1000, page_token=token, **filters))
        jobs += page.jobs
        token = page.next_page_token
        if not token:
            return jobs


async def counts(stub: job_pb2_grpc.JobServiceStub, dependency: str) -> dict[str, int]:
    status = await stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    for entry in status.dependencies:
        if entry.dependency == dependency:
            return {k: v for k, v in entry.counts_by_status.items() if v}
    return {}


async def applied(jobs: job_pb2_grpc.JobServiceStub, breakers: breaker_pb2_grpc.BreakerServiceStub, dependency: str, state: int) -> bool:
    """True once job_svc has applied the breaker's latest transition, which is to `state`."""
    breaker = (await breakers.GetBreaker(breaker_pb2.GetBreakerRequest(dependency=dependency))).breaker
    status = await jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    return breaker.state == state and status.applied_revision >= breaker.revision and not status.breaker_state_stale


async def claim_all(stub: job_pb2_grpc.JobServiceStub, worker: str, dependencies: list[str]) -> list[job_pb2.Job]:
    claimed: list[job_pb2.Job] = []
    while batch := (await stub.ClaimJobs(claim_request(worker, dependencies, 200, lease_s=300))).jobs:
        claimed += batch
    return claimed


async def complete(stub: job_pb2_grpc.JobServiceStub, jobs: list[job_pb2.Job], worker: str) -> None:
    await in_batches([stub.CompleteJob(job_pb2.CompleteJobRequest(id=j.id, worker_id=worker)) for j in jobs])


def start_job_svc(service_process, database_url: str, breaker, port: int | None = None):  # type: ignore[no-untyped-def]
    env = {"JOB_DATABASE_URL": database_url, "BREAKER_TARGET": breaker.address, "JOB_BREAKER_STALE_AFTER_S": "5"}
    return service_process("job_svc", env, port_env="JOB_PORT", port=port)


async def test_a_tripped_breaker_pauses_its_jobs_half_open_releases_the_permits_and_recovery_resumes_the_rest(
    service_process, postgres_url: str
) -> None:
    breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
    job_svc = start_job_svc(service_process, postgres_url, breaker)
    async with grpc.aio.insecure_channel(job_svc.address) as j_channel, grpc.aio.insecure_channel(breaker.address) as b_channel:
        jobs, breakers = job_pb2_grpc.JobServiceStub(j_channel), breaker_pb2_grpc.BreakerServiceStub(b_channel)
        await eventually(lambda: _heard(jobs), timeout_s=20)
        await in_batches([jobs.CreateJob(create_request([DOWN if i % 2 else UP])) for i in range(1000)])
        assert await counts(jobs, DOWN) == {"pending": 500} and await counts(jobs, UP) == {"pending": 500}

        # A worker's calls to perplexity fail: it says so, job_svc forwards it, the breaker opens.
        trial = (await jobs.ClaimJobs(claim_request("w1", [DOWN], 5))).jobs
        for job in trial:
            await jobs.FailJob(job_pb2.FailJobRequest(id=job.id, worker_id="w1", error="503", failed_dependency=DOWN))
        await eventually(lambda: applied(jobs, breakers, DOWN, breaker_pb2.BREAKER_STATE_OPEN), timeout_s=20)
        assert await counts(jobs, DOWN) == {"paused": 500} and await counts(jobs, UP) == {"pending": 500}
        assert not (await jobs.ClaimJobs(claim_request("w1", [DOWN], 100))).jobs

        # After the open wait, HALF_OPEN: exactly the 3 trial permits are released, oldest first.
        await eventually(lambda: applied(jobs, breakers, DOWN, breaker_pb2.BREAKER_STATE_HALF_OPEN), timeout_s=15)
        assert await counts(jobs, DOWN) == {"paused": 497, "pending": 3}
        trials = await claim_all(jobs, "w2", [DOWN])
        oldest = [j.id for j in await all_jobs(jobs, dependency=DOWN)][:3]
        assert sorted(j.id for j in trials) == sorted(oldest)

        # The trials succeed: the breaker closes and every remaining job runs.
        await complete(jobs, trials, "w2")
        await eventually(lambda: applied(jobs, breakers, DOWN, breaker_pb2.BREAKER_STATE_CLOSED), timeout_s=20)
        assert await counts(jobs, DOWN) == {"pending": 497, "completed": 3}
        rest = await claim_all(jobs, "w3", [])
        assert len(rest) == 997
        await complete(jobs, rest, "w3")

    everything = await _everything(job_svc.address)
    assert Counter(j.status for j in everything) == {P.JOB_STATUS_COMPLETED: 1000}  # nothing lost
    assert {j.attempts for j in everything} == {0}  # the provider's failures spent no attempt


async def test_job_svc_killed_while_a_breaker_changes_state_ends_with_the_right_jobs(service_process, postgres_url: str) -> None:
    breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
    job_svc = start_job_svc(service_process, postgres_url, breaker)
    async with grpc.aio.insecure_channel(breaker.address) as b_channel:
        breakers = breaker_pb2_grpc.BreakerServiceStub(b_channel)
        async with grpc.aio.insecure_channel(job_svc.address) as channel:
            jobs = job_pb2_grpc.JobServiceStub(channel)
            await eventually(lambda: _heard(jobs), timeout_s=20)
            await in_batches([jobs.CreateJob(create_request([DOWN if i % 2 else UP])) for i in range(200)])

        # The breaker opens as job_svc dies (mid-apply or before it heard), and it is restarted.
        await breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=DOWN, reason="provider outage"))
        job_svc.kill()
        job_svc = start_job_svc(service_process, postgres_url, breaker, port=job_svc.port)
        async with grpc.aio.insecure_channel(job_svc.address) as channel:
            jobs = job_pb2_grpc.JobServiceStub(channel)
            await eventually(lambda: applied(jobs, breakers, DOWN, breaker_pb2.BREAKER_STATE_FORCED_OPEN), timeout_s=20)
            assert await counts(jobs, DOWN) == {"paused": 100} and await counts(jobs, UP) == {"pending": 100}
            job_svc.kill()

        # It closes while job_svc is down: the restarted service catches up from its revision.
        await breakers.ForceClose(breaker_pb2.ForceCloseRequest(dependency=DOWN, reason="recovered"))
        job_svc = start_job_svc(service_process, postgres_url, breaker, port=job_svc.port)
        async with grpc.aio.insecure_channel(job_svc.address) as channel:
            jobs = job_pb2_grpc.JobServiceStub(channel)
            await eventually(lambda: applied(jobs, breakers, DOWN, breaker_pb2.BREAKER_STATE_FORCED_CLOSED), timeout_s=20)
            assert await counts(jobs, DOWN) == {"pending": 100}
            assert len(await claim_all(jobs, "w", [DOWN])) == 100
    assert {j.attempts for j in await _everything(job_svc.address)} == {0}


async def _heard(jobs: job_pb2_grpc.JobServiceStub) -> bool:
    return not (await jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())).breaker_state_stale


async def _everything(address: str) -> list[job_pb2.Job]:
    async with grpc.aio.insecure_channel(address) as channel:
        return await all_jobs(job_pb2_grpc.JobServiceStub(channel))
