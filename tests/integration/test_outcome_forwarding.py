"""The outcome forwarder against a real breaker_svc (in-process, real gRPC): no single outcome
stops it, and a batch sent again is counted once."""

import asyncio
from datetime import UTC, datetime

import grpc
import pytest
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from sqlalchemy import select, text

from breaker_svc.store.memory import MemoryStore
from breaker_svc.usecases import MAX_BATCH
from job_svc import metrics
from job_svc.forwarder import MAX_BATCH_SIZE, OutcomeForwarder
from job_svc.store import Outcome
from job_svc.tables import breaker_outbox
from tests.support.breaker import running_app as running_breaker
from tests.support.job import running_jobs, unique


async def _add(svc, outcomes: list[Outcome]) -> None:  # type: ignore[no-untyped-def]
    async with svc.app.store.transaction() as tx:
        await tx.add_outcomes(outcomes, datetime.now(UTC))


async def _outbox(svc) -> list[tuple[str, float | None, bool, str]]:  # type: ignore[no-untyped-def]
    """(dependency, duration, set aside?, error) of every row left, oldest first."""
    async with svc.app.engine.connect() as connection:
        rows = await connection.execute(select(breaker_outbox).order_by(breaker_outbox.c.id))
        return [(r.dependency, r.duration_s, r.set_aside_at is not None, r.last_error) for r in rows]


async def _calls(breakers: breaker_pb2_grpc.BreakerServiceStub, dependency: str) -> int:
    return (await breakers.GetBreaker(breaker_pb2.GetBreakerRequest(dependency=dependency))).breaker.metrics.calls


async def _drain(forwarder: OutcomeForwarder, stub) -> None:  # type: ignore[no-untyped-def]
    """Runs the forwarder until the outbox has nothing left to send (errors mean: go again)."""
    for _ in range(40):
        try:
            if await forwarder.forward_once(stub) == 0:
                return
        except grpc.aio.AioRpcError:
            pass
    raise AssertionError("the outbox never drained")


async def test_outcomes_that_cannot_be_counted_are_set_aside_and_never_block_the_rest(database_url: str) -> None:
    async with running_breaker(MemoryStore()) as (_, breakers), running_jobs(database_url) as svc:
        good = unique()
        await _add(
            svc,
            [
                Outcome(good, True, 0.5),
                Outcome(good, True, 9223372036854775807.0),  # no protobuf Duration holds it
                Outcome("not a dependency name!", True, None),  # breaker_svc refuses the batch
                Outcome(good, True, None),
            ],
        )
        await _add(svc, [Outcome(good, True, 1.0) for _ in range(3)])
        set_aside_before = metrics.OUTCOMES_SET_ASIDE._value.get()
        forwarder = OutcomeForwarder(svc.app.store, "unused", batch_size=4, max_attempts=2)

        await _drain(forwarder, breakers)

        assert await _calls(breakers, good) == 5
        left = await _outbox(svc)
        assert [(d, s) for d, _, s, _ in left] == [(good, True), ("not a dependency name!", True)]
        assert "cannot be expressed" in left[0][3] and left[1][3].startswith("INVALID_ARGUMENT")
        assert metrics.OUTCOMES_SET_ASIDE._value.get() == set_aside_before + 2


class _AnswerLost:
    """A stub whose RecordOutcomeBatches reaches breaker_svc, but whose acknowledgement never
    comes back."""

    def __init__(self, stub: breaker_pb2_grpc.BreakerServiceStub) -> None:
        self._stub = stub

    async def RecordOutcomeBatches(self, requests, **kwargs):  # type: ignore[no-untyped-def]
        async for _ in self._stub.RecordOutcomeBatches(requests, **kwargs):
            pass  # breaker_svc counted the batch and acknowledged it...
        raise grpc.aio.AioRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, grpc.aio.Metadata(), grpc.aio.Metadata(), "lost")
        yield  # (never reached: an async generator, read as the real call is)


async def test_a_batch_sent_again_after_a_lost_answer_is_counted_once(database_url: str) -> None:
    async with running_breaker(MemoryStore()) as (_, breakers), running_jobs(database_url) as svc:
        dependency = unique()
        await _add(svc, [Outcome(dependency, True, 0.1) for _ in range(6)])
        forwarder = OutcomeForwarder(svc.app.store, "unused", batch_size=10)
        try:
            await forwarder.forward_once(_AnswerLost(breakers))
            raise AssertionError("the lost answer should have raised")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert await _calls(breakers, dependency) == 6
        assert len(await _outbox(svc)) == 6  # not known to be counted: still there, same batch

        await _drain(forwarder, breakers)
        assert await _calls(breakers, dependency) == 6
        assert await _outbox(svc) == []


class _Unacknowledged:
    """A stub whose RecordOutcomeBatches ends OK without acknowledging the batch."""

    async def RecordOutcomeBatches(self, requests, **kwargs):  # type: ignore[no-untyped-def]
        return
        yield  # (never reached: an async generator, read as the real call is)


async def test_a_batch_is_deleted_only_once_breaker_svc_acknowledged_it(database_url: str) -> None:
    async with running_jobs(database_url) as svc:
        await _add(svc, [Outcome(unique(), True, None) for _ in range(3)])
        forwarder = OutcomeForwarder(svc.app.store, "unused")
        try:
            await forwarder.forward_once(_Unacknowledged())
            raise AssertionError("the missing acknowledgement should have raised")
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.INTERNAL
        left = await _outbox(svc)
        assert len(left) == 3 and all(error.startswith("INTERNAL") for _, _, _, error in left)  # retried as a failure


class _Held:
    """A stub whose RecordOutcomeBatches waits until the test lets it acknowledge."""

    def __init__(self) -> None:
        self.sending = asyncio.Event()
        self.answer = asyncio.Event()

    async def RecordOutcomeBatches(self, requests, **kwargs):  # type: ignore[no-untyped-def]
        self.sending.set()
        await self.answer.wait()
        for request in requests:
            yield breaker_pb2.RecordOutcomeBatchesResponse(batch_id=request.batch_id, recorded_count=len(request.outcomes))


async def test_no_transaction_is_open_while_a_batch_is_on_the_wire(postgres_url: str) -> None:
    async with running_jobs(postgres_url) as svc:
        await _add(svc, [Outcome(unique(), True, None) for _ in range(3)])
        stub = _Held()
        sending = asyncio.create_task(OutcomeForwarder(svc.app.store, "unused").forward_once(stub))
        await asyncio.wait_for(stub.sending.wait(), 10)
        async with svc.app.engine.connect() as connection:
            query = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'"
            assert await connection.scalar(text(query)) == 0
        stub.answer.set()
        assert await sending == 3
        assert await _outbox(svc) == []


def test_a_batch_never_holds_more_outcomes_than_breaker_svc_takes_in_one() -> None:
    assert MAX_BATCH_SIZE == MAX_BATCH
    with pytest.raises(ValueError, match="batch_size"):
        OutcomeForwarder(None, "unused", batch_size=MAX_BATCH + 1)  # type: ignore[arg-type]


class _Counted(OutcomeForwarder):
    """A forwarder that notes how many outcomes each of its sends held."""

    sends: list[int]

    async def forward_once(self, stub) -> int:  # type: ignore[no-untyped-def]
        sent = await super().forward_once(stub)
        if sent:
            self.sends.append(sent)
        return sent


async def test_outcomes_written_within_the_linger_of_the_last_batch_share_the_next(database_url: str) -> None:
    async with running_breaker(MemoryStore()) as (app, _), running_jobs(database_url) as svc:
        forwarder = _Counted(svc.app.store, f"127.0.0.1:{app.port}", linger_s=0.5, poll_s=30)
        forwarder.sends = []
        running = asyncio.create_task(forwarder.run())
        try:
            await asyncio.sleep(0.2)  # its first look found the outbox empty: it waits to be woken
            for _ in range(4):  # four finishes, 50 ms apart, each waking it
                await _add(svc, [Outcome(unique(), True, None)])
                forwarder.wake()
                await asyncio.sleep(0.05)
            for _ in range(100):
                if not await _outbox(svc):
                    break
                await asyncio.sleep(0.05)
            # The first, after a quiet spell, at once; the next three together, once the linger passed.
            assert forwarder.sends == [1, 3]
        finally:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
