"""Outcomes reach breaker_svc through the outbox: job calls succeed while breaker_svc is down,
and the forwarder delivers everything, in order, once it is back."""

import asyncio
import time
from datetime import UTC, datetime, timedelta

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2
from sqlalchemy import func, select

from job_svc.store import Outcome
from job_svc.tables import breaker_outbox
from tests.support.job import claim_request, create_jobs, running_jobs, unique
from tests.support.processes import free_port


class RecordingBreaker(breaker_pb2_grpc.BreakerServiceServicer):
    """Stands in for breaker_svc: remembers the outcomes it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int]] = []

    async def RecordOutcomeBatches(self, request_iterator, context):  # type: ignore[no-untyped-def]
        async for request in request_iterator:
            self.received += [(outcome.dependency, outcome.result) for outcome in request.outcomes]
            yield breaker_pb2.RecordOutcomeBatchesResponse(batch_id=request.batch_id, recorded_count=len(request.outcomes))

    async def WatchTransitions(self, request, context):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()  # a quiet stream: job_svc's mirror just waits
        yield breaker_pb2.WatchTransitionsResponse()


async def test_outcomes_wait_in_the_outbox_while_breaker_svc_is_down_then_arrive_in_order(database_url: str) -> None:
    port = free_port()
    async with running_jobs(database_url, background=True, breaker_target=f"127.0.0.1:{port}") as svc:
        a, b = unique(), unique()
        first, second = await create_jobs(svc.stub, [a, b], 2)
        await svc.stub.ClaimJobs(claim_request("w", [a, b], 2))
        await svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=first.id, worker_id="w"))
        failed = await svc.stub.FailJob(job_pb2.FailJobRequest(id=second.id, worker_id="w", error="503", failed_dependency=b))
        assert failed.job.status == job_pb2.JOB_STATUS_PENDING  # breaker_svc down: the call still succeeds

        async def outbox_size() -> int:
            async with svc.app.engine.connect() as connection:
                return await connection.scalar(select(func.count()).select_from(breaker_outbox))

        assert await outbox_size() == 3
        breaker = RecordingBreaker()
        server = grpc.aio.server()
        breaker_pb2_grpc.add_BreakerServiceServicer_to_server(breaker, server)
        server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        try:
            deadline = time.monotonic() + 15
            while (len(breaker.received) < 3 or await outbox_size()) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await server.stop(0)
        success, failure = breaker_pb2.CALL_RESULT_SUCCESS, breaker_pb2.CALL_RESULT_FAILURE
        assert breaker.received == [(d, success) for d in sorted([a, b])] + [(b, failure)]
        assert await outbox_size() == 0


async def test_forwarders_side_by_side_claim_disjoint_batches_and_a_lapsed_lease_resends_the_same_batch(database_url: str) -> None:
    async with running_jobs(database_url) as svc:
        store = svc.app.store
        async with store.transaction() as tx:
            await tx.add_outcomes([Outcome(unique(), True, None) for _ in range(30)], datetime.now(UTC))
        now = datetime.now(UTC)
        batches = [b for b in await asyncio.gather(*(store.claim_outbox_batch(10, now, lease_s=60) for _ in range(3))) if b]
        while (more := await store.claim_outbox_batch(10, now, lease_s=60)) is not None:
            batches.append(more)
        rows = [row.id for batch in batches for row in batch.rows]
        assert sorted(rows) == sorted(set(rows)) and len(rows) == 30  # every outcome in exactly one batch
        assert len({batch.batch_id for batch in batches}) == len(batches)
        assert all(len(batch.rows) <= 10 for batch in batches)
        oldest = min(batches, key=lambda batch: batch.rows[0].id)
        # Once the lease lapses, the oldest batch formed is claimed again: same id, same rows.
        again = await store.claim_outbox_batch(10, now + timedelta(seconds=61), lease_s=60)
        assert again is not None and (again.batch_id, again.rows) == (oldest.batch_id, oldest.rows)
        await store.delete_outbox_batch(again.batch_id)
        after = await store.claim_outbox_batch(10, now + timedelta(seconds=61), lease_s=60)
        assert after is not None and after.batch_id != oldest.batch_id
