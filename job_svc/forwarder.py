"""Forwards call outcomes from the outbox to breaker_svc, so workers need only the job service.

CompleteJob and FailJob write their outcomes to `breaker_outbox` in the job's own transaction.
This loop sends them in order, in batches (`RecordOutcomes`), and deletes them once breaker_svc
has accepted them: delivery is at least once, and a breaker_svc outage never fails a job call;
the loop retries with capped exponential backoff until it is back.
"""

import asyncio

import grpc
import structlog
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from job_svc import metrics
from job_svc.store import JobStore, OutboxRow
from services.backoff import Backoff
from services.client.channel import bearer_metadata, open_channel
from services.protoconv import duration

log = structlog.get_logger()

# Codes after which a resend can succeed; anything else is a bad outcome that would block the
# outbox for ever, so it is logged and dropped.
RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAUTHENTICATED,
}


class OutcomeForwarder:
    def __init__(
        self,
        store: JobStore,
        target: str,
        *,
        batch_size: int = 200,
        poll_s: float = 1.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        timeout_s: float = 10.0,
        token: str | None = None,
    ) -> None:
        self._store = store
        self._target = target
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._wake = asyncio.Event()
        self._metadata = bearer_metadata(token)

    def wake(self) -> None:
        """Outcomes were written: send them now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        async with open_channel(self._target) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            while True:
                self._wake.clear()
                try:
                    sent = await self.forward_once(stub)
                except grpc.aio.AioRpcError as error:
                    log.warning("outcome_forward_failed", target=self._target, code=error.code().name, retry_in_s=round(backoff.next_s, 2))
                    await backoff.wait()
                    continue
                except Exception:  # noqa: BLE001 - database down: keep trying
                    log.exception("outcome_forward_failed", target=self._target)
                    await backoff.wait()
                    continue
                backoff.reset()
                if sent < self._batch_size:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._poll_s)
                    except TimeoutError:
                        pass

    async def forward_once(self, stub: breaker_pb2_grpc.BreakerServiceStub) -> int:
        """Sends the oldest batch; returns how many outcomes it held."""
        async with self._store.outbox_batch(self._batch_size) as rows:
            if not rows:
                return 0
            try:
                await stub.RecordOutcomes(iter(_requests(rows)), timeout=self._timeout_s, metadata=self._metadata)
            except grpc.aio.AioRpcError as error:
                if error.code() in RETRYABLE:
                    raise
                log.error("outcomes_dropped", code=error.code().name, details=error.details(), outcomes=len(rows))
                return len(rows)
        metrics.OUTCOMES_FORWARDED.inc(len(rows))
        return len(rows)


def _requests(rows: list[OutboxRow]) -> list[breaker_pb2.RecordOutcomesRequest]:
    requests = []
    for row in rows:
        request = breaker_pb2.RecordOutcomesRequest(
            dependency=row.dependency,
            result=breaker_pb2.CALL_RESULT_SUCCESS if row.success else breaker_pb2.CALL_RESULT_FAILURE,
        )
        if row.duration_s is not None:
            request.duration.CopyFrom(duration(row.duration_s))
        requests.append(request)
    return requests
