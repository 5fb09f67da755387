"""Forwards call outcomes from the outbox to breaker_svc, so workers need only the job service.

CompleteJob and FailJob write their outcomes to `breaker_outbox` in the job's own transaction.
This loop sends them in order, in batches, and deletes them once breaker_svc has acknowledged
them. Each batch is one `RecordOutcomeBatches` call carrying the whole batch as its one message,
answered by one acknowledgement (one stream write per batch, not one per outcome). No
transaction is open while a batch is on the wire: the batch is claimed (rows given a batch id
and a lease), sent, then deleted, each in a short transaction of its own.

Delivery is exactly once in effect: a batch keeps its id on every resend (after a lost answer, a
timeout, or a crash of this process), and breaker_svc counts a batch id once. A breaker_svc
outage never fails a job call: the same batch is retried with capped exponential backoff until
it is back. A failure of the batch's own (refused, or failing again and again) is not allowed to
block the outbox: the batch is split into one batch per outcome, and an outcome that still cannot
be counted is set aside (kept in the table with its error, logged, counted in a metric).
"""

import asyncio
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import grpc
import structlog
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from job_svc import metrics
from job_svc.store import JobStore, OutboxBatch, OutboxRow
from services.backoff import Backoff
from services.client.channel import bearer_metadata, open_channel
from services.protoconv import duration
from services.request_id import joined as joined_request_ids

log = structlog.get_logger()

# breaker_svc cannot be reached or will not talk to us: nothing to do with the batch itself, so
# it is resent as it is, for as long as it takes.
PEER_DOWN = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAUTHENTICATED})
# The batch was refused as a whole (breaker_svc validates every outcome before counting any):
# resending it cannot help, and nothing of it was counted, so it is split at once.
REFUSED = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})
# Any other failure is retried this many times before the batch is split, or its single outcome
# set aside.
MAX_ATTEMPTS = 5
# breaker.v1's limit on the outcomes of one batch (JOB_OUTBOX_BATCH is bounded by it): a larger
# batch would be refused whole and split on every send.
MAX_BATCH_SIZE = 10_000


class OutcomeForwarder:
    def __init__(
        self,
        store: JobStore,
        target: str,
        *,
        batch_size: int = 200,
        poll_s: float = 1.0,
        linger_s: float = 0.02,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 10.0,
        timeout_s: float = 10.0,
        token: str | None = None,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{MAX_BATCH_SIZE}, got {batch_size}")
        self._store = store
        self._target = target
        self._batch_size = batch_size
        self._poll_s = poll_s
        self._linger_s = linger_s
        self._last_sent_at = -math.inf
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
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
                    await self._wait_for_outcomes()

    async def _wait_for_outcomes(self) -> None:
        """Until outcomes are written (or the poll period ends), and no sooner than `linger_s`
        after the previous batch went: under load each finish wakes the forwarder, and every few
        finishes would otherwise cost a batch of their own (two transactions and a call to
        breaker_svc); with the linger, the finishes of those milliseconds share one. Outcomes
        written after a quiet spell go at once."""
        try:
            await asyncio.wait_for(self._wake.wait(), self._poll_s)
        except TimeoutError:
            return
        await asyncio.sleep(self._last_sent_at + self._linger_s - time.monotonic())

    async def forward_once(self, stub: breaker_pb2_grpc.BreakerServiceStub) -> int:
        """Sends the next batch; returns how many outcomes it held. Raises after a failure that
        calls for a wait (breaker_svc down, or the batch failing and left to retry)."""
        # Past its lease a batch may be resent by another replica: the lease outlasts the call.
        batch = await self._store.claim_outbox_batch(self._batch_size, _now(), lease_s=2 * self._timeout_s)
        if batch is None:
            return 0
        self._last_sent_at = time.monotonic()
        request, unsendable = _request(batch)
        if unsendable:
            await self._set_aside(unsendable, "the outcome cannot be expressed in a RecordOutcomeBatchesRequest")
        if request.outcomes:
            try:
                await self._send(stub, request, batch.rows)
            except grpc.aio.AioRpcError as error:
                await self._failed(batch, error)
                return len(batch.rows)
        await self._store.delete_outbox_batch(batch.batch_id)
        metrics.OUTCOMES_FORWARDED.inc(len(request.outcomes))
        return len(batch.rows)

    async def _send(
        self, stub: breaker_pb2_grpc.BreakerServiceStub, request: breaker_pb2.RecordOutcomeBatchesRequest, rows: Sequence[OutboxRow]
    ) -> None:
        """One call per batch: the batch is its only message, so its only answer is the batch's
        acknowledgement. Raises unless breaker_svc acknowledged this batch and ended the call OK."""
        call = stub.RecordOutcomeBatches(iter((request,)), timeout=self._timeout_s, metadata=self._call_metadata(rows))
        acknowledged = [ack.batch_id async for ack in call]  # raises the call's error, if it failed
        if acknowledged != [request.batch_id]:
            details = f"breaker_svc ended the call without acknowledging batch {request.batch_id} (acknowledged: {acknowledged})"
            raise grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), grpc.aio.Metadata(), details)

    async def _failed(self, batch: OutboxBatch, error: grpc.aio.AioRpcError) -> None:
        code = error.code()
        if code in PEER_DOWN:
            await self._store.release_outbox_batch(batch.batch_id)
            raise error
        reason = f"{code.name}: {error.details()}"
        attempts = await self._store.outbox_batch_failed(batch.batch_id, reason)
        if code not in REFUSED and attempts < self._max_attempts:
            log.warning("outcome_batch_retrying", batch_id=batch.batch_id, outcomes=len(batch.rows), attempts=attempts, error=reason)
            raise error
        if len(batch.rows) == 1:
            await self._set_aside(batch.rows, reason)
            return
        # Split: each outcome goes on alone. (A refused batch counted nothing; a batch that kept
        # failing otherwise may have been counted in part, then its pieces count again: breaker_svc
        # failing the same batch five times over is a bug of its own, logged there.)
        log.warning("outcome_batch_split", batch_id=batch.batch_id, outcomes=len(batch.rows), attempts=attempts, error=reason)
        await self._store.split_outbox_batch(batch.batch_id)

    async def _set_aside(self, rows: Sequence[OutboxRow], reason: str) -> None:
        await self._store.set_aside_outcomes([row.id for row in rows], reason, _now())
        metrics.OUTCOMES_SET_ASIDE.inc(len(rows))
        for row in rows:
            log.error("outcome_set_aside", outbox_id=row.id, dependency=row.dependency, error=reason)

    def _call_metadata(self, rows: Sequence[OutboxRow]) -> tuple[tuple[str, str], ...]:
        """The token, and as x-request-id the ids of the calls that wrote the batch."""
        callers = joined_request_ids([row.request_id for row in rows])
        return (*self._metadata, ("x-request-id", callers)) if callers else self._metadata


def _now() -> datetime:
    return datetime.now(UTC)


def _request(batch: OutboxBatch) -> tuple[breaker_pb2.RecordOutcomeBatchesRequest, list[OutboxRow]]:
    """The batch as one RecordOutcomeBatches message, and the rows that cannot be put into it (a
    duration out of the protobuf range, say)."""
    outcomes: list[breaker_pb2.Outcome] = []
    unsendable: list[OutboxRow] = []
    for row in batch.rows:
        outcome = breaker_pb2.Outcome(
            dependency=row.dependency,
            result=breaker_pb2.CALL_RESULT_SUCCESS if row.success else breaker_pb2.CALL_RESULT_FAILURE,
        )
        try:
            if row.duration_s is not None:
                outcome.duration.CopyFrom(duration(row.duration_s))
        except (ValueError, OverflowError):
            unsendable.append(row)
            continue
        outcomes.append(outcome)
    return breaker_pb2.RecordOutcomeBatchesRequest(batch_id=batch.batch_id, outcomes=outcomes), unsendable
