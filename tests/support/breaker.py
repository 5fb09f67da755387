"""Helpers for breaker_svc's tests: the app in-process on port 0, stubs, and stream readers."""

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc

from breaker_svc.app import BreakerApp
from breaker_svc.domain import BreakerConfig
from breaker_svc.settings import BreakerSettings
from breaker_svc.store import BreakerStore
from breaker_svc.store.memory import MemoryStore
from breaker_svc.store.redis_store import RedisStore
from services.config import ServerSettings

# Trips after 4 calls with half of them failed; goes HALF_OPEN 0.2 s later; 2 trial calls.
FAST_CONFIG = BreakerConfig(window_size=10, minimum_calls=4, open_wait_s=0.2, half_open_permitted_calls=2)


def settings(**overrides: Any) -> BreakerSettings:
    base = BreakerSettings(
        store="memory",
        redis_url="redis://127.0.0.1:6379/0",
        redis_prefix="breaker:",
        event_retention=10_000,
        heartbeat_s=0.2,
        watch_buffer=1000,
        timer_interval_s=0.05,
        default_config=FAST_CONFIG,
    )
    return dataclasses.replace(base, **overrides)


def make_store(kind: str, redis_url: str, prefix: str, retention: int = 10_000) -> BreakerStore:
    if kind == "redis":
        return RedisStore.from_url(redis_url, prefix=prefix, retention=retention)
    return MemoryStore(retention=retention)


@asynccontextmanager
async def running_app(
    store: BreakerStore, admin_token: str | None = None, port: int = 0, **overrides: Any
) -> AsyncIterator[tuple[BreakerApp, breaker_pb2_grpc.BreakerServiceStub]]:
    """The whole service in-process on a free port (or `port`), and a stub on a real channel to it."""
    server_settings = ServerSettings("127.0.0.1", port, 1.0, admin_token, None, "info")
    app = BreakerApp(settings(**overrides), server_settings, store=store)
    port = await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield app, breaker_pb2_grpc.BreakerServiceStub(channel)
    finally:
        await app.stop()


class StreamReader:
    """Reads a WatchTransitions stream with deadlines instead of blind sleeps."""

    def __init__(self, call: grpc.aio.UnaryStreamCall) -> None:
        self.call = call
        self.received: list[pb.WatchTransitionsResponse] = []

    async def next(self, timeout_s: float = 5.0) -> pb.WatchTransitionsResponse:
        async with asyncio.timeout(timeout_s):
            message = await self.call.read()
        if message is grpc.aio.EOF:
            raise EOFError("stream ended")
        self.received.append(message)
        return message

    async def next_of(self, kind: str, timeout_s: float = 5.0) -> Any:
        """The next message of one kind (snapshot, transition, heartbeat), skipping others."""
        deadline = time.monotonic() + timeout_s
        while True:
            message = await self.next(max(0.01, deadline - time.monotonic()))
            if message.WhichOneof("event") == kind:
                return getattr(message, kind)

    async def transitions(self, count: int, timeout_s: float = 5.0) -> list[pb.Transition]:
        found = []
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            found.append(await self.next_of("transition", max(0.01, deadline - time.monotonic())))
        return found

    def cancel(self) -> None:
        self.call.cancel()


def watch(stub: breaker_pb2_grpc.BreakerServiceStub, from_revision: int | None = None, dependencies: tuple[str, ...] = ()) -> StreamReader:
    request = pb.WatchTransitionsRequest(dependencies=list(dependencies))
    if from_revision is not None:
        request.from_revision = from_revision
    return StreamReader(stub.WatchTransitions(request))


async def fail(stub: breaker_pb2_grpc.BreakerServiceStub, dependency: str, times: int = 1) -> pb.RecordOutcomeResponse:
    response = None
    for _ in range(times):
        response = await stub.RecordOutcome(pb.RecordOutcomeRequest(dependency=dependency, result=pb.CALL_RESULT_FAILURE))
    return response


async def succeed(stub: breaker_pb2_grpc.BreakerServiceStub, dependency: str, times: int = 1) -> pb.RecordOutcomeResponse:
    response = None
    for _ in range(times):
        response = await stub.RecordOutcome(pb.RecordOutcomeRequest(dependency=dependency, result=pb.CALL_RESULT_SUCCESS))
    return response


def admin(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
