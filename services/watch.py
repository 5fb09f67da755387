"""The breaker watch client that job_svc and campaign_svc subscribe with.

`BreakerWatcher.events()` is an endless async stream of snapshots and transitions. It connects
to breaker_svc's `WatchTransitions`, and on every (re)connect asks the caller for the last
revision it *applied* (from the caller's own database), so a crash between receiving and
applying an event loses nothing: the event is simply delivered again, and subscribers apply
events idempotently. Lost connections and ended streams (including RESOURCE_EXHAUSTED when the
subscriber fell behind) are retried with capped exponential backoff and jitter.
"""

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import grpc
import structlog
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from services.breaker_state import BreakerState
from services.protoconv import ProtoEnum

log = structlog.get_logger()


BREAKER_STATE = ProtoEnum(breaker_pb2.BreakerState, BreakerState, "BREAKER_STATE_")


@dataclass(frozen=True)
class BreakerView:
    """What a subscriber knows of one breaker."""

    dependency: str
    state: BreakerState
    revision: int
    half_open_permitted_calls: int


@dataclass(frozen=True)
class Snapshot:
    """Every breaker's state at `revision`. With `reset`, what the subscriber knew is void: it
    must reconcile all its records against these states (breakers absent here are closed)."""

    revision: int
    breakers: tuple[BreakerView, ...]
    reset: bool


@dataclass(frozen=True)
class Transition:
    revision: int
    dependency: str
    from_state: BreakerState
    to_state: BreakerState
    half_open_permitted_calls: int
    reason: str

    @property
    def view(self) -> BreakerView:
        return BreakerView(self.dependency, self.to_state, self.revision, self.half_open_permitted_calls)


@dataclass(frozen=True)
class Heartbeat:
    revision: int


WatchEvent = Snapshot | Transition | Heartbeat


def event_from_proto(message: breaker_pb2.WatchTransitionsResponse) -> WatchEvent | None:
    kind = message.WhichOneof("event")
    if kind == "snapshot":
        snapshot = message.snapshot
        views = tuple(
            BreakerView(b.dependency, BREAKER_STATE.required_from_proto(b.state, "state"), b.revision, b.config.half_open_permitted_calls)
            for b in snapshot.breakers
        )
        return Snapshot(snapshot.revision, views, snapshot.reset)
    if kind == "transition":
        t = message.transition
        return Transition(
            t.revision,
            t.dependency,
            BREAKER_STATE.required_from_proto(t.from_state, "from_state"),
            BREAKER_STATE.required_from_proto(t.to_state, "to_state"),
            t.half_open_permitted_calls,
            t.reason,
        )
    if kind == "heartbeat":
        return Heartbeat(message.heartbeat.revision)
    return None  # a newer server's message kind this client does not know: skip it


class BreakerWatcher:
    def __init__(
        self,
        target: str,
        resume_revision: Callable[[], Awaitable[int | None]],
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
    ) -> None:
        self._target = target
        self._resume_revision = resume_revision
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self.connected = False
        self.last_contact_monotonic: float | None = None
        self.last_contact_wall: float | None = None

    def seconds_since_contact(self) -> float | None:
        if self.last_contact_monotonic is None:
            return None
        return time.monotonic() - self.last_contact_monotonic

    def is_stale(self, bound_s: float) -> bool:
        """True when nothing was heard from breaker_svc within `bound_s` (or ever)."""
        since = self.seconds_since_contact()
        return since is None or since > bound_s

    async def events(self) -> AsyncIterator[WatchEvent]:
        backoff_s = self._backoff_initial_s
        while True:
            try:
                async for event in self._one_connection():
                    backoff_s = self._backoff_initial_s
                    yield event
                log.warning("breaker_stream_ended", target=self._target)
            except grpc.aio.AioRpcError as error:
                log.warning("breaker_stream_lost", target=self._target, code=error.code().name, details=error.details())
            self.connected = False
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.0))
            backoff_s = min(backoff_s * 2, self._backoff_max_s)

    async def _one_connection(self) -> AsyncIterator[WatchEvent]:
        async with grpc.aio.insecure_channel(self._target) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            request = breaker_pb2.WatchTransitionsRequest()
            revision = await self._resume_revision()
            if revision is not None:
                request.from_revision = revision
            log.info("breaker_stream_connecting", target=self._target, from_revision=revision)
            async for message in stub.WatchTransitions(request):
                self.connected = True
                self.last_contact_monotonic = time.monotonic()
                self.last_contact_wall = time.time()
                event = event_from_proto(message)
                if event is not None:
                    yield event
