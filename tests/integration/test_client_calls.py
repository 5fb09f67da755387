"""services.client's call plumbing over a real gRPC channel: deadlines, request ids, the token,
retries on UNAVAILABLE for idempotent calls only; and the synchronous facade from threads."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc

from services.client.calls import Caller
from services.client.channel import open_channel
from services.client.sync import SyncFacade
from tests.support.campaign import serving


class Flaky(breaker_pb2_grpc.BreakerServiceServicer):
    """GetBreaker refuses the first `unavailable` calls with UNAVAILABLE; Acquire can be slow."""

    def __init__(self, unavailable: int = 0, acquire_delay_s: float = 0.0) -> None:
        self.unavailable = unavailable
        self.acquire_delay_s = acquire_delay_s
        self.metadata: list[dict[str, str]] = []

    async def GetBreaker(self, request, context):  # type: ignore[no-untyped-def]
        self.metadata.append(dict(context.invocation_metadata()))
        if self.unavailable > 0:
            self.unavailable -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")
        return pb.GetBreakerResponse(breaker=pb.Breaker(dependency=request.dependency))

    async def Acquire(self, request, context):  # type: ignore[no-untyped-def]
        await asyncio.sleep(self.acquire_delay_s)
        return pb.AcquireResponse(permitted=True)


async def test_idempotent_calls_are_retried_with_one_request_id_and_the_token() -> None:
    flaky = Flaky(unavailable=2)
    async with serving(lambda s: breaker_pb2_grpc.add_BreakerServiceServicer_to_server(flaky, s)) as (target, _):
        async with open_channel(target, tls=None) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            caller = Caller(token="s3cret", backoff_initial_s=0.01)
            response = await caller(stub.GetBreaker, pb.GetBreakerRequest(dependency="openai"), idempotent=True)
    assert response.breaker.dependency == "openai"
    assert len(flaky.metadata) == 3
    assert len({m["x-request-id"] for m in flaky.metadata}) == 1
    assert all(m["authorization"] == "Bearer s3cret" for m in flaky.metadata)


async def test_other_calls_are_not_retried_and_deadlines_bound_the_call() -> None:
    flaky = Flaky(unavailable=1, acquire_delay_s=1.0)
    async with serving(lambda s: breaker_pb2_grpc.add_BreakerServiceServicer_to_server(flaky, s)) as (target, _):
        async with open_channel(target, tls=None) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            caller = Caller(timeout_s=0.2)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await caller(stub.GetBreaker, pb.GetBreakerRequest(dependency="openai"), idempotent=False)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and len(flaky.metadata) == 1
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as late:
                await caller(stub.Acquire, pb.AcquireRequest(dependency="openai"), idempotent=True)
            assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 0.6


class Client:
    """The smallest async client: one channel, one method."""

    def __init__(self, target: str) -> None:
        self._channel = open_channel(target, tls=None)
        self._stub = breaker_pb2_grpc.BreakerServiceStub(self._channel)
        self.loop_thread = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._channel.close()

    async def get(self, dependency: str) -> str:
        self.loop_thread = threading.current_thread().name
        return (await self._stub.GetBreaker(pb.GetBreakerRequest(dependency=dependency))).breaker.dependency


async def test_the_sync_facade_serves_many_threads_from_one_loop() -> None:
    flaky = Flaky()
    async with serving(lambda s: breaker_pb2_grpc.add_BreakerServiceServicer_to_server(flaky, s)) as (target, _):

        def from_threads() -> list[str]:
            with SyncFacade(lambda: Client(target)) as client:
                with ThreadPoolExecutor(8) as pool:
                    names = list(pool.map(client.get, [f"dep-{i}" for i in range(40)]))
                assert client.loop_thread.endswith("-loop")
                return names

        names = await asyncio.to_thread(from_threads)
    assert names == [f"dep-{i}" for i in range(40)]
