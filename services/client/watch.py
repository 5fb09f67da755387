"""Following breaker_svc's WatchTransitions stream: the protocol part, with grpcio, protobuf and
the generated code only (the breaker guard's mirror and job_svc's and campaign_svc's use it).

`BreakerWatcher.events()` is an endless async stream of snapshots and transitions. It connects
to breaker_svc's `WatchTransitions`, and on every (re)connect asks the caller for the position it
*applied* last (from the caller's own database, or memory), so a crash between receiving and
applying an event loses nothing: the event is simply delivered again, and subscribers apply
events idempotently. Lost connections and ended streams (including RESOURCE_EXHAUSTED when the
subscriber fell behind) are retried with capped exponential backoff and jitter.

A position is an epoch and a revision. Revisions count within one incarnation of breaker_svc's
transition log (its epoch); when the log is lost (an in-memory breaker_svc restarted, Redis
flushed) they start again from 0 under a new epoch. The watcher sends both, so breaker_svc
answers a revision of a lost log with a reset snapshot instead of replaying the new log from a
number that meant something else. Every event carries the epoch it belongs to: snapshots and
heartbeats say it, transitions are in the epoch of the stream (the one resumed in, or the last
snapshot's).

Logging goes to a `log` object called as `log.info(event, **fields)`: by default the standard
library's `logging` (logger `services.client.watch`); the services pass their structlog logger.
"""

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from services.backoff import Backoff
from services.breaker_state import BreakerState
from services.client.channel import open_channel


def state_from_proto(number: int) -> BreakerState:
    """The BreakerState of a proto enum number (breaker_svc never sends UNSPECIFIED)."""
    return BreakerState[breaker_pb2.BreakerState.Name(number).removeprefix("BREAKER_STATE_")]


@dataclass(frozen=True)
class BreakerView:
    """What a subscriber knows of one breaker."""

    dependency: str
    state: BreakerState
    revision: int
    half_open_permitted_calls: int


class Position(NamedTuple):
    """Where a subscriber is in breaker_svc's transition log: the last revision it applied and the
    epoch (log incarnation) that revision counts in. None, None: nothing applied yet."""

    epoch: str | None
    revision: int | None


@dataclass(frozen=True)
class Snapshot:
    """Every breaker's state at `revision` of `epoch`. With `reset`, what the subscriber knew is
    void: it must reconcile all its records against these states (breakers absent here are
    closed). `epoch` is None only from a breaker_svc that predates epochs. `breakers` holds the
    messages themselves too (`messages`), for subscribers that want more than the state."""

    revision: int
    breakers: tuple[BreakerView, ...]
    reset: bool
    epoch: str | None = None
    messages: tuple[breaker_pb2.Breaker, ...] = ()


@dataclass(frozen=True)
class Transition:
    revision: int
    dependency: str
    from_state: BreakerState
    to_state: BreakerState
    half_open_permitted_calls: int
    reason: str
    epoch: str | None = None  # the stream's epoch (None: unknown, a breaker_svc without epochs)

    @property
    def view(self) -> BreakerView:
        return BreakerView(self.dependency, self.to_state, self.revision, self.half_open_permitted_calls)


@dataclass(frozen=True)
class Heartbeat:
    revision: int
    epoch: str | None = None


WatchEvent = Snapshot | Transition | Heartbeat


def event_from_proto(message: breaker_pb2.WatchTransitionsResponse, epoch: str | None = None) -> WatchEvent | None:
    """The event a stream message carries; a transition is given `epoch`, the stream's."""
    kind = message.WhichOneof("event")
    if kind == "snapshot":
        snapshot = message.snapshot
        views = tuple(
            BreakerView(b.dependency, state_from_proto(b.state), b.revision, b.config.half_open_permitted_calls)
            for b in snapshot.breakers
        )
        return Snapshot(snapshot.revision, views, snapshot.reset, snapshot.epoch or None, tuple(snapshot.breakers))
    if kind == "transition":
        t = message.transition
        return Transition(
            t.revision,
            t.dependency,
            state_from_proto(t.from_state),
            state_from_proto(t.to_state),
            t.half_open_permitted_calls,
            t.reason,
            epoch,
        )
    if kind == "heartbeat":
        return Heartbeat(message.heartbeat.revision, message.heartbeat.epoch or None)
    return None  # a newer server's message kind this client does not know: skip it


class _StdlibLog:
    """`log.info(event, **fields)` onto a standard library logger."""

    def __init__(self, logger: logging.Logger) -> None:
        self._logger = logger

    def info(self, event: str, **fields: Any) -> None:
        self._logger.info("%s %s", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._logger.warning("%s %s", event, fields)


class BreakerWatcher:
    def __init__(
        self,
        target: str,
        resume_position: Callable[[], Awaitable[tuple[str | None, int | None]]],
        *,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        metadata: tuple[tuple[str, str], ...] = (),
        channel_factory: Callable[[str], grpc.aio.Channel] = open_channel,
        log: Any = None,
    ) -> None:
        self._target = target
        self._resume_position = resume_position
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._metadata = metadata
        self._channel_factory = channel_factory
        self._log = log or _StdlibLog(logging.getLogger(__name__))
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
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        while True:
            try:
                async for event in self._one_connection():
                    backoff.reset()
                    yield event
                self._log.warning("breaker_stream_ended", target=self._target)
            except grpc.aio.AioRpcError as error:
                self._log.warning("breaker_stream_lost", target=self._target, code=error.code().name, details=error.details())
            self.connected = False
            await backoff.wait()

    async def _one_connection(self) -> AsyncIterator[WatchEvent]:
        async with self._channel_factory(self._target) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            request = breaker_pb2.WatchTransitionsRequest()
            epoch, revision = await self._resume_position()
            if revision is not None and epoch is None:
                # Applied before epochs existed: nothing says which log the revision counted
                # in, so it cannot be trusted to resume from. A snapshot replaces it.
                self._log.info("breaker_stream_position_without_epoch", target=self._target, revision=revision)
                revision = None
            if revision is not None:
                request.from_revision = revision
                request.epoch = epoch
            stream_epoch = epoch if revision is not None else None
            # Each stream has its own request id, in breaker_svc's access log and in ours.
            stream_id = f"watch-{uuid.uuid4().hex[:16]}"
            self._log.info(
                "breaker_stream_connecting", target=self._target, from_revision=revision, epoch=epoch, stream_request_id=stream_id
            )
            metadata = (*self._metadata, ("x-request-id", stream_id))
            async for message in stub.WatchTransitions(request, metadata=metadata):
                self.connected = True
                self.last_contact_monotonic = time.monotonic()
                self.last_contact_wall = time.time()
                event = event_from_proto(message, stream_epoch)
                if isinstance(event, Snapshot):
                    stream_epoch = event.epoch
                if event is not None:
                    yield event
