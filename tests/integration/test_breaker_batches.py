"""Outcome batches are counted exactly once: a batch sent again with the same id (a retry after a
lost response), to the same replica or another one on the same Redis, or twice at once, counts
only what was not counted yet. Real gRPC, memory and Redis stores."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import grpc
import pytest
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc

from breaker_svc.domain import BreakerConfig
from breaker_svc.store.memory import MemoryStore
from breaker_svc.store.redis_store import RedisStore
from tests.support.breaker import running_app
from tests.support.databases import throwaway_redis_prefix

SUCCESS, FAILURE = pb.CALL_RESULT_SUCCESS, pb.CALL_RESULT_FAILURE
# Never trips on rates (so counts stay readable), trips on 50 consecutive failures.
WIDE = BreakerConfig(window_size=1000, minimum_calls=1000, consecutive_failure_threshold=50, open_wait_s=60)


def outcomes(results: list[int], dependency: str = "openai") -> list[pb.Outcome]:
    return [pb.Outcome(dependency=dependency, result=r) for r in results]


async def send_stream(stub: breaker_pb2_grpc.BreakerServiceStub, batch_id: str, items: list[pb.Outcome]) -> pb.RecordOutcomesResponse:
    requests = [pb.RecordOutcomesRequest(dependency=o.dependency, result=o.result, batch_id=batch_id if i == 0 else "") for i, o in enumerate(items)]
    return await stub.RecordOutcomes(iter(requests))


async def send_batches(stub: breaker_pb2_grpc.BreakerServiceStub, batches: list[tuple[str, list[pb.Outcome]]]) -> list[pb.RecordOutcomeBatchesResponse]:
    call = stub.RecordOutcomeBatches(iter([pb.RecordOutcomeBatchesRequest(batch_id=b, outcomes=o) for b, o in batches]))
    return [ack async for ack in call]


async def calls(stub: breaker_pb2_grpc.BreakerServiceStub, dependency: str = "openai") -> tuple[int, int]:
    breaker = (await stub.GetBreaker(pb.GetBreakerRequest(dependency=dependency))).breaker
    return breaker.metrics.calls, breaker.metrics.failed_calls


@pytest.fixture(params=["memory", "redis"])
async def replicas(request, redis_url: str) -> AsyncIterator[list[breaker_pb2_grpc.BreakerServiceStub]]:
    """Two replicas sharing one store (Redis), or one replica (memory) listed twice."""
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            _, stub = await stack.enter_async_context(running_app(MemoryStore(), default_config=WIDE))
            yield [stub, stub]
            return
        prefix = await stack.enter_async_context(throwaway_redis_prefix(redis_url, "batches"))
        stubs = []
        for _ in range(2):
            _, stub = await stack.enter_async_context(running_app(RedisStore.from_url(redis_url, prefix=prefix), default_config=WIDE))
            stubs.append(stub)
        yield stubs


async def test_a_client_streamed_batch_sent_again_is_counted_once(replicas) -> None:
    first, second = replicas
    batch = outcomes([SUCCESS, FAILURE, SUCCESS] * 10)
    answer = await send_stream(first, "batch-1", batch)
    again = await send_stream(second, "batch-1", batch)

    assert (answer.recorded_count, answer.already_recorded_count) == (30, 0)
    assert (again.recorded_count, again.already_recorded_count) == (0, 30)
    assert await calls(first) == (30, 10)
    unnamed = await send_stream(second, "", batch)  # no id: counted every time, as before
    assert unnamed.recorded_count == 30 and await calls(first) == (60, 20)


async def test_batches_on_the_long_lived_stream_are_acknowledged_in_order_and_counted_once(replicas) -> None:
    first, second = replicas
    batches = [(f"b-{i}", outcomes([SUCCESS] * 5 + [FAILURE] * 5, dependency=f"dep-{i % 3}")) for i in range(9)]
    acks = await send_batches(first, batches)
    assert [a.batch_id for a in acks] == [b for b, _ in batches]
    assert all((a.recorded_count, a.already_recorded_count) == (10, 0) for a in acks)

    # The acks of the last three were "lost": the client sends them again on a new stream.
    again = await send_batches(second, batches[6:] + [("b-new", outcomes([SUCCESS]))])
    assert [(a.recorded_count, a.already_recorded_count) for a in again] == [(0, 10)] * 3 + [(1, 0)]
    assert [await calls(first, f"dep-{i}") for i in range(3)] == [(30, 15), (30, 15), (30, 15)]
    assert await calls(first, "openai") == (1, 0)


async def test_a_batch_delivered_to_two_replicas_at_once_is_counted_once(replicas) -> None:
    first, second = replicas
    for round_ in range(5):
        batch = outcomes([SUCCESS, FAILURE] * 20 + [SUCCESS] * 20)
        answers = await asyncio.gather(send_stream(first, f"race-{round_}", batch), send_stream(second, f"race-{round_}", batch))
        assert sum(a.recorded_count for a in answers) == 60
        assert all(a.recorded_count + a.already_recorded_count == 60 for a in answers)
    assert await calls(first) == (300, 100)


async def test_a_batch_that_trips_the_breaker_midway_is_counted_once_with_one_transition(replicas) -> None:
    first, second = replicas
    batch = outcomes([FAILURE] * 60 + [SUCCESS] * 5)  # the 50th failure opens the breaker
    await send_stream(first, "trip", batch)
    again = await send_stream(second, "trip", batch)
    breaker = (await first.GetBreaker(pb.GetBreakerRequest(dependency="openai"))).breaker

    assert again.already_recorded_count == 65
    assert breaker.state == pb.BREAKER_STATE_OPEN and breaker.revision == 1
    assert breaker.metrics.calls == 65


async def test_batch_ids_are_checked() -> None:
    async with running_app(MemoryStore(), default_config=WIDE) as (_, stub):
        for bad in ["", "x" * 65, "no spaces", "ünicode"]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await send_batches(stub, [(bad, outcomes([SUCCESS]))])
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert len(refused.value.details()) < 200
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await send_batches(stub, [("empty", [])])
        assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        mixed = [pb.RecordOutcomesRequest(dependency="openai", result=SUCCESS, batch_id=b) for b in ("a", "a", "b")]
        with pytest.raises(grpc.aio.AioRpcError) as changed:
            await stub.RecordOutcomes(iter(mixed))
        assert changed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await stub.ListBreakers(pb.ListBreakersRequest()) == pb.ListBreakersResponse()  # nothing recorded


async def test_a_batch_id_is_forgotten_after_the_retention_window() -> None:
    async with running_app(MemoryStore(batch_retention_s=0.2), default_config=WIDE) as (_, stub):
        batch = outcomes([SUCCESS] * 3)
        await send_stream(stub, "short", batch)
        assert (await send_stream(stub, "short", batch)).recorded_count == 0
        await asyncio.sleep(0.3)
        assert (await send_stream(stub, "short", batch)).recorded_count == 3
