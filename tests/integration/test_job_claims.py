"""Claims under concurrency: workers claiming at the same time never receive the same job."""

import asyncio
import time
from collections import Counter

from job.v1 import job_pb2

from tests.support.job import bulk_insert_jobs, claim_request, running_jobs, unique


async def test_concurrent_claimers_never_get_the_same_job(database_url: str) -> None:
    async with running_jobs(database_url) as svc:
        dependency, total = unique(), 120
        await bulk_insert_jobs(svc.app, [dependency], 40)
        await bulk_insert_jobs(svc.app, [dependency, "apollo"], 40)
        await bulk_insert_jobs(svc.app, ["apollo"], 40)
        received: list[tuple[str, str]] = []
        deadline = time.monotonic() + 30

        async def worker(name: str, dependencies: list[str]) -> None:
            while len(received) < total and time.monotonic() < deadline:
                claimed = (await svc.stub.ClaimJobs(claim_request(name, dependencies, 7))).jobs
                received.extend((job.id, name) for job in claimed)
                assert all(job.lease_owner == name and job.status == job_pb2.JOB_STATUS_PROCESSING for job in claimed)
                if not claimed:
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(f"w{i}", [dependency, "apollo"] if i % 2 else []) for i in range(6)))
        per_job = Counter(job_id for job_id, _ in received)
        assert len(per_job) == total and set(per_job.values()) == {1}
        owners = {job.id: job.lease_owner for job in (await svc.stub.ListJobs(job_pb2.ListJobsRequest(page_size=1000))).jobs}
        assert owners == dict(received)  # each job is leased to the one worker that received it
        assert len({name for _, name in received}) > 1
