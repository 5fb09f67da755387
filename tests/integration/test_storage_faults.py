"""Storage faults through real calls: every call answers OK or UNAVAILABLE, never INTERNAL, and
the service recovers by itself once storage is back."""

import asyncio
from collections import Counter

import grpc
from job.v1 import job_pb2

from tests.support.databases import cut_connections
from tests.support.job import claim_request, create_jobs, create_request, running_jobs, unique


async def test_cut_database_connections_answer_unavailable_and_the_next_calls_recover(postgres_url: str) -> None:
    async with running_jobs(postgres_url) as svc:
        dependency = unique()
        await create_jobs(svc.stub, [dependency], 40)
        codes: Counter[str] = Counter()
        cutting = asyncio.Event()
        cutting.set()

        async def call(rpc):  # type: ignore[no-untyped-def]
            try:
                response = await rpc
                codes["OK"] += 1
                return response
            except grpc.aio.AioRpcError as error:
                codes[error.code().name] += 1
                assert error.code() == grpc.StatusCode.UNAVAILABLE, error.details()
                return None

        async def work(worker: str) -> None:
            while cutting.is_set():
                # A long lease: on a loaded machine a call may take longer than the default one.
                claimed = await call(svc.stub.ClaimJobs(claim_request(worker, [dependency], max_jobs=2, lease_s=600)))
                for job in claimed.jobs if claimed else ():
                    await call(svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=job.id, worker_id=worker)))
                await call(svc.stub.CreateJob(create_request([dependency])))

        async def cut() -> None:
            for _ in range(4):
                await asyncio.sleep(0.2)
                await cut_connections(postgres_url)
            cutting.clear()

        await asyncio.gather(cut(), *(work(f"w{i}") for i in range(6)))
        assert codes["UNAVAILABLE"] > 0 and codes["OK"] > 0, codes
        # The pool noticed: the very next calls work, with no restart.
        for _ in range(5):
            await svc.stub.GetQueueStatus(job_pb2.GetQueueStatusRequest())
            await svc.stub.CreateJob(create_request([dependency]))
