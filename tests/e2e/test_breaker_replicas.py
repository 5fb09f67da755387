"""Two `python -m breaker_svc` processes sharing one Redis, driven over gRPC like production."""

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from tests.support.breaker import StreamReader, watch
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.redis

S = pb.BreakerState


@pytest.fixture
def replicas(service_process: Callable[..., ServiceProcess], redis_url: str, redis_prefix: str) -> list[ServiceProcess]:
    env = {
        "BREAKER_STORE": "redis",
        "REDIS_URL": redis_url,
        "BREAKER_REDIS_PREFIX": redis_prefix,
        "BREAKER_HEARTBEAT_S": "0.2",
        "BREAKER_TIMER_INTERVAL_S": "0.05",
        "BREAKER_DEFAULT_WINDOW_SIZE": "100",
        "BREAKER_DEFAULT_MINIMUM_CALLS": "4",
        "BREAKER_DEFAULT_OPEN_WAIT_S": "600",
        "BREAKER_DEFAULT_MAX_OPEN_WAIT_S": "600",
    }
    return [service_process("breaker_svc", env, port_env="BREAKER_PORT") for _ in range(2)]


@pytest.fixture
async def stubs(replicas: list[ServiceProcess]) -> AsyncIterator[list[breaker_pb2_grpc.BreakerServiceStub]]:
    channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
    yield [breaker_pb2_grpc.BreakerServiceStub(c) for c in channels]
    for channel in channels:
        await channel.close()


def outcome(dependency: str, result: int) -> pb.RecordOutcomeRequest:
    return pb.RecordOutcomeRequest(dependency=dependency, result=result)


async def transitions_up_to(stream: StreamReader, revision: int) -> list[tuple[int, str, int, int]]:
    found = []
    while not found or found[-1][0] < revision:
        t = await stream.next_of("transition", timeout_s=10)
        found.append((t.revision, t.dependency, t.from_state, t.to_state))
    return found


async def test_racing_replicas_emit_one_event_per_change_and_stream_the_same_sequence(stubs) -> None:
    a, b = stubs
    streams = [watch(a), watch(b)]
    for stream in streams:
        assert (await stream.next_of("snapshot", timeout_s=10)).revision == 0

    failures = [stub.RecordOutcome(outcome("openai", pb.CALL_RESULT_FAILURE)) for stub in (a, b) for _ in range(30)]
    await asyncio.gather(*failures)
    # Both replicas' timers race to half-open this one.
    await a.ConfigureBreaker(
        pb.ConfigureBreakerRequest(
            dependency="apollo",
            config=pb.BreakerConfig(open_wait_duration=Duration(nanos=300_000_000)),
            update_mask=FieldMask(paths=["open_wait_duration"]),
        )
    )
    for stub in (a, b, a, b):
        await stub.RecordOutcome(outcome("apollo", pb.CALL_RESULT_FAILURE))

    async def half_open_on_both() -> bool:
        got = [await stub.GetBreaker(pb.GetBreakerRequest(dependency="apollo")) for stub in (a, b)]
        return all(g.breaker.state == S.BREAKER_STATE_HALF_OPEN for g in got)

    await eventually(half_open_on_both, timeout_s=10)
    marker = await b.ForceOpen(pb.ForceOpenRequest(dependency="instantly", reason="marker"))
    assert marker.breaker.revision == 4  # nothing else was committed in between

    expected = [
        (1, "openai", S.BREAKER_STATE_CLOSED, S.BREAKER_STATE_OPEN),
        (2, "apollo", S.BREAKER_STATE_CLOSED, S.BREAKER_STATE_OPEN),
        (3, "apollo", S.BREAKER_STATE_OPEN, S.BREAKER_STATE_HALF_OPEN),
        (4, "instantly", S.BREAKER_STATE_CLOSED, S.BREAKER_STATE_FORCED_OPEN),
    ]
    assert await transitions_up_to(streams[0], 4) == expected
    assert await transitions_up_to(streams[1], 4) == expected
    openai = await a.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
    assert openai.breaker.metrics.consecutive_failures == 60  # every outcome of both replicas landed
    for stream in streams:
        stream.cancel()


async def test_a_subscriber_that_reconnects_to_another_replica_gets_every_missed_event_once(stubs, replicas) -> None:
    a, b = stubs
    stream = watch(a)
    await stream.next_of("snapshot", timeout_s=10)
    await a.ForceOpen(pb.ForceOpenRequest(dependency="apollo"))
    await b.ForceOpen(pb.ForceOpenRequest(dependency="openai"))
    last = (await transitions_up_to(stream, 2))[-1][0]
    stream.cancel()

    for dependency in ("apollo", "openai", "perplexity"):
        await b.ForceClose(pb.ForceCloseRequest(dependency=dependency))
        await a.ResetBreaker(pb.ResetBreakerRequest(dependency=dependency))
    resumed = watch(b, from_revision=last)
    await a.ForceOpen(pb.ForceOpenRequest(dependency="millionverifier"))

    revisions = [t[0] for t in await transitions_up_to(resumed, 9)]
    assert revisions == list(range(last + 1, 10))
    assert (await resumed.next_of("heartbeat")).revision == 9
    assert sum(m.WhichOneof("event") == "transition" for m in resumed.received) == 7
    assert all(m.WhichOneof("event") != "snapshot" for m in resumed.received)

    # SIGTERM ends open streams cleanly and the process exits 0.
    assert await asyncio.to_thread(replicas[1].terminate) == 0
    with pytest.raises(EOFError):
        while True:
            await resumed.next(timeout_s=10)
    assert await resumed.call.code() == grpc.StatusCode.OK
