"""The breaker guard: provider calls protected by breaker_svc's shared breakers at in-process cost.

    from services.client import BreakerClient, BreakerOpen

    async with BreakerClient("127.0.0.1:50051") as breakers:
        async with breakers.guard("openai"):        # or @breakers.guard("openai") on a function
            await call_openai()

How a guarded call goes:

- One `WatchTransitions` stream per `BreakerClient` keeps a local mirror of every breaker (a
  snapshot, then transitions; it resumes by epoch and revision and reconnects with backoff).
- CLOSED or FORCED_CLOSED (and a breaker the mirror has never heard of): the call goes ahead
  with no RPC. OPEN or FORCED_OPEN: `BreakerOpen` at once, carrying `dependency`, `state` and
  `retry_after_s` (seconds until an OPEN breaker lets trial calls through; None when unknown, or
  when an operator holds it open). HALF_OPEN: the guard asks breaker_svc for a trial permit
  (`Acquire`); without one the call is refused with `BreakerOpen`, with one it goes ahead and
  its outcome is sent at once, so the trial is decided without waiting for a batch to fill.
- The outcome of every call that went ahead is recorded: its duration (breaker_svc judges
  slowness against the breaker's `slow_call_duration_threshold`), and its exception classified
  as resilience4j does: one of `ignore` (neither success nor failure: not recorded), else one
  of `record` (a failure), else a success. By default every `Exception` is a failure;
  cancellation (`asyncio.CancelledError`) is never recorded.
- Outcomes travel in batches over one long-lived `RecordOutcomeBatches` stream, flushed when
  `batch_size` are waiting or `flush_interval_s` after the first; each batch has an id, so a
  batch re-sent after a lost acknowledgement is counted once. Memory is bounded: at most
  `max_pending_outcomes` wait or are in flight; more are dropped and counted
  (`dropped_outcomes`), a caller never blocks on it.
- breaker_svc unheard of for longer than `stale_after_s` (no snapshot, transition or heartbeat:
  it is down or unreachable): with `when_stale="open"` (the default) every call goes ahead as if
  its breaker were closed; with `when_stale="closed"` every call is refused with
  `BreakerUnavailable` (a `BreakerOpen`). The default fails open because the breaker guards
  against a *provider* failing, and breaker_svc being unreachable says nothing about the
  providers: failing closed would turn an outage of breaker_svc into an outage of every
  provider call. Outcomes keep being buffered meanwhile (bounded) and are counted on reconnect.

Which provider a failure belongs to: the guard re-raises the original exception, and
`failed_dependency(error)` returns the dependency whose guard recorded it as a failure, or the
dependency of a `BreakerOpen` (always the provider's fault); None for anything else (an ignored
or unclassified exception, or an error outside any guard). A worker uses it to tell "this job
failed because of provider X" (pause the job, spend no attempt) from an ordinary failure.

Threads: `SyncBreakerClient` runs the client on a loop thread of its own; its `guard(...)` works
as `with` and as a decorator of plain functions, from any thread, and costs no thread hop while
the breaker is closed.
"""

import asyncio
import functools
import inspect
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal

import grpc
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc
from google.protobuf.duration_pb2 import Duration

from services.backoff import Backoff
from services.breaker_state import BreakerState
from services.client.breaker_service import BreakerServiceClient
from services.client.calls import Caller
from services.client.channel import ClientTLS, _FROM_ENV, open_channel
from services.client.sync import SyncFacade
from services.client.watch import BreakerWatcher, Position, Snapshot, Transition, state_from_proto

log = logging.getLogger(__name__)

_GOES_AHEAD = frozenset({BreakerState.CLOSED, BreakerState.FORCED_CLOSED})
_FAILED_DEPENDENCY = "_services_client_failed_dependency"


class BreakerOpen(Exception):
    """The call was not made: `dependency`'s breaker refuses calls (`state`). `retry_after_s`:
    seconds until a retry makes sense (an OPEN breaker's remaining wait), None when unknown."""

    def __init__(self, dependency: str, state: BreakerState, retry_after_s: float | None = None) -> None:
        self.dependency = dependency
        self.state = state
        self.retry_after_s = retry_after_s
        setattr(self, _FAILED_DEPENDENCY, dependency)
        after = "" if retry_after_s is None else f"; retry in {retry_after_s:.1f}s"
        super().__init__(f"breaker of {dependency!r} is {state.value}{after}")


class BreakerUnavailable(BreakerOpen):
    """Refused because breaker_svc has not been heard from for longer than the staleness bound
    and the client fails closed; `state` is the last one known (CLOSED if none)."""

    def __init__(self, dependency: str, state: BreakerState, silent_s: float | None) -> None:
        super().__init__(dependency, state, None)
        self.args = (f"breaker_svc not heard from for {silent_s or 0:.0f}s: calls to {dependency!r} are refused",)


def failed_dependency(error: BaseException) -> str | None:
    """The dependency `error` is a failure of: a `BreakerOpen`'s, or the one whose guard recorded
    the error as a failure. None for any other error."""
    return getattr(error, _FAILED_DEPENDENCY, None)


@dataclass(frozen=True)
class OutcomePolicy:
    """How a guard classifies an exception (resilience4j's recordExceptions / ignoreExceptions):
    one of `ignore` is not recorded at all; else one of `record` is a failure; else a success."""

    record: tuple[type[BaseException], ...] = (Exception,)
    ignore: tuple[type[BaseException], ...] = ()

    def classify(self, error: BaseException | None) -> bool | None:
        """True: a success, False: a failure, None: not recorded."""
        if error is None:
            return True
        if isinstance(error, asyncio.CancelledError) or isinstance(error, self.ignore):
            return None
        if failed_dependency(error) is not None:
            return None  # another guard's refusal or failure passing through this one
        return not isinstance(error, self.record)


class Guard:
    """One guarded call (`async with` / `with`), or a decorator of functions."""

    __slots__ = ("_client", "dependency", "_policy", "_started", "_trial")

    def __init__(self, client: "BreakerClient", dependency: str, policy: OutcomePolicy) -> None:
        self._client = client
        self.dependency = dependency
        self._policy = policy
        self._started = 0.0
        self._trial = False

    async def __aenter__(self) -> "Guard":
        self._trial = await self._client._admit(self.dependency)
        self._started = time.perf_counter()
        return self

    async def __aexit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self._finish(error)

    def __enter__(self) -> "Guard":
        self._trial = self._client._admit_blocking(self.dependency)
        self._started = time.perf_counter()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> None:
        self._finish(error)

    def _finish(self, error: BaseException | None) -> None:
        duration_s = time.perf_counter() - self._started
        success = self._policy.classify(error)
        if success is None:
            return
        if success is False and error is not None:
            with suppress(AttributeError):  # an exception type with __slots__ cannot be tagged
                setattr(error, _FAILED_DEPENDENCY, self.dependency)
        self._client._outcomes.add(self.dependency, success, duration_s, urgent=self._trial)

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        client, dependency, policy = self._client, self.dependency, self._policy
        if inspect.iscoroutinefunction(function):

            @functools.wraps(function)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                async with Guard(client, dependency, policy):
                    return await function(*args, **kwargs)

            return guarded_async

        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with Guard(client, dependency, policy):
                return function(*args, **kwargs)

        return guarded


class _Outcomes:
    """Outcomes waiting to be sent, and batches sent but not yet acknowledged; bounded together.

    `add` is called from the loop or any thread: a deque append, and a wake-up of the flusher
    only when it sleeps with nothing to do (so a busy stream costs callers no thread hop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_pending: int, batch_size: int, flush_interval_s: float) -> None:
        self.loop = loop
        self._loop_thread = threading.get_ident()
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.waiting: deque[tuple[str, bool, float]] = deque()
        self.in_flight: deque[pb.RecordOutcomeBatchesRequest] = deque()
        self.in_flight_outcomes = 0
        self.ack_awaited_since: float | None = None  # monotonic; None while nothing is in flight
        self.dropped = 0
        self.recorded = 0  # acknowledged as counted by breaker_svc (now or by an earlier delivery)
        self.wake = asyncio.Event()
        self.idle = True
        self.urgent = False

    def add(self, dependency: str, success: bool, duration_s: float, urgent: bool = False) -> None:
        if len(self.waiting) + self.in_flight_outcomes >= self.max_pending:
            self.dropped += 1
            return
        self.waiting.append((dependency, success, duration_s))
        if urgent:
            self.urgent = True
        if self.idle or urgent:
            self.idle = False
            if threading.get_ident() == self._loop_thread:
                self.wake.set()
            else:
                self.loop.call_soon_threadsafe(self.wake.set)

    def cut(self) -> pb.RecordOutcomeBatchesRequest:
        """The next batch (up to batch_size waiting outcomes), moved to in-flight."""
        outcomes = []
        for _ in range(min(self.batch_size, len(self.waiting))):
            dependency, success, duration_s = self.waiting.popleft()
            duration = Duration()
            duration.FromNanoseconds(int(duration_s * 1e9))
            result = pb.CALL_RESULT_SUCCESS if success else pb.CALL_RESULT_FAILURE
            outcomes.append(pb.Outcome(dependency=dependency, result=result, duration=duration))
        batch = pb.RecordOutcomeBatchesRequest(batch_id=uuid.uuid4().hex, outcomes=outcomes)
        if not self.in_flight:
            self.ack_awaited_since = time.monotonic()
        self.in_flight.append(batch)
        self.in_flight_outcomes += len(outcomes)
        return batch

    def acknowledge(self, ack: pb.RecordOutcomeBatchesResponse) -> None:
        """breaker_svc acknowledges batches in the order they were sent: the oldest in flight."""
        if not self.in_flight or self.in_flight[0].batch_id != ack.batch_id:
            raise _OutOfOrder(f"acknowledgement of {ack.batch_id!r} out of order")
        batch = self.in_flight.popleft()
        self.ack_awaited_since = time.monotonic() if self.in_flight else None
        self.in_flight_outcomes -= len(batch.outcomes)
        self.recorded += ack.recorded_count + ack.already_recorded_count


class _OutOfOrder(Exception):
    """An acknowledgement that is not of the oldest batch in flight: the stream is re-opened and
    every unacknowledged batch sent again."""


@dataclass
class _Known:
    """The mirror's view of one breaker: its state, and when an OPEN breaker's wait ends
    (monotonic seconds; None when not known yet)."""

    state: BreakerState
    open_until: float | None = None


class BreakerClient:
    """Guards for provider calls, fed by one breaker_svc (see the module docstring)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLS | None | object = _FROM_ENV,
        policy: OutcomePolicy = OutcomePolicy(),
        stale_after_s: float = 30.0,
        when_stale: Literal["open", "closed"] = "open",
        batch_size: int = 1000,
        flush_interval_s: float = 0.005,
        max_pending_outcomes: int = 100_000,
        ack_timeout_s: float = 5.0,
        timeout_s: float = 5.0,
        ready_timeout_s: float = 5.0,
    ) -> None:
        if when_stale not in ("open", "closed"):
            raise ValueError("when_stale must be 'open' or 'closed'")
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be within 1..10000 (breaker_svc's batch limit)")
        self.target = target
        self.policy = policy
        self.stale_after_s = stale_after_s
        self.when_stale = when_stale
        self._tls = tls
        self._caller = Caller(token=token, timeout_s=timeout_s)
        self._metadata = self._caller.metadata()
        self._batch_size = batch_size
        self._flush_interval_s = flush_interval_s
        self._max_pending = max_pending_outcomes
        self._ack_timeout_s = ack_timeout_s
        self._ready_timeout_s = ready_timeout_s
        self._known: dict[str, _Known] = {}
        self._position = Position(None, None)
        self._snapshot_seen = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: grpc.aio.Channel | None = None
        self._outcomes: _Outcomes
        self.service: BreakerServiceClient
        self.watcher = BreakerWatcher(
            target,
            self._resume_from,
            metadata=self._metadata,
            channel_factory=lambda t: open_channel(t, tls=tls),
        )

    # --- life ------------------------------------------------------------------------------

    async def __aenter__(self) -> "BreakerClient":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Opens the stream and the outcome sender, and waits up to `ready_timeout_s` for the
        first snapshot (without it, breakers count as unknown: closed, or stale)."""
        self._channel = open_channel(self.target, tls=self._tls)
        self.service = BreakerServiceClient.on_channel(self._channel, self._caller)
        self._outcomes = _Outcomes(asyncio.get_running_loop(), self._max_pending, self._batch_size, self._flush_interval_s)
        self._tasks = [
            asyncio.create_task(self._follow(), name="breaker-mirror"),
            asyncio.create_task(self._send_outcomes(), name="breaker-outcomes"),
        ]
        with suppress(TimeoutError):
            async with asyncio.timeout(self._ready_timeout_s):
                await self._snapshot_seen.wait()

    async def close(self, flush_timeout_s: float = 2.0) -> None:
        """Sends what is waiting (for at most `flush_timeout_s`), then stops."""
        if self._channel is None:
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(flush_timeout_s):
                while self._outcomes.waiting or self._outcomes.in_flight:
                    self._outcomes.wake.set()
                    await asyncio.sleep(0.005)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._channel.close()
        self._channel = None

    # --- what callers use -----------------------------------------------------------------

    def guard(self, dependency: str, policy: OutcomePolicy | None = None) -> Guard:
        """A guard of one call to `dependency` (`async with`, or a decorator)."""
        return Guard(self, dependency, policy or self.policy)

    def state(self, dependency: str) -> BreakerState:
        """The state the mirror knows (CLOSED for a breaker never heard of)."""
        known = self._known.get(dependency)
        return BreakerState.CLOSED if known is None else known.state

    def is_stale(self) -> bool:
        return self.watcher.is_stale(self.stale_after_s)

    @property
    def dropped_outcomes(self) -> int:
        """Outcomes dropped because `max_pending_outcomes` were waiting or in flight."""
        return self._outcomes.dropped

    @property
    def recorded_outcomes(self) -> int:
        """Outcomes breaker_svc has acknowledged as counted."""
        return self._outcomes.recorded

    @property
    def pending_outcomes(self) -> int:
        """Outcomes waiting to be sent or not yet acknowledged."""
        return len(self._outcomes.waiting) + self._outcomes.in_flight_outcomes

    @property
    def unsent_outcomes(self) -> int:
        """Outcomes waiting to be sent."""
        return len(self._outcomes.waiting)

    # --- admission -------------------------------------------------------------------------

    async def _admit(self, dependency: str) -> bool:
        """Raises BreakerOpen or returns whether the call is a half-open trial (permit held)."""
        if self._needs_permit(dependency):
            return await self._acquire(dependency)
        return False

    def _admit_blocking(self, dependency: str) -> bool:
        """`_admit` for a caller in another thread: only a permit request hops to the loop."""
        if self._needs_permit(dependency):
            return asyncio.run_coroutine_threadsafe(self._acquire(dependency), self._outcomes.loop).result()
        return False

    def _needs_permit(self, dependency: str) -> bool:
        """From the mirror alone: False, the call goes ahead; True, it needs a trial permit;
        or BreakerOpen."""
        known = self._known.get(dependency)
        if (known is None or known.state in _GOES_AHEAD) and self.when_stale == "open":
            return False  # the hot path: a dict read, no RPC
        if self.is_stale():
            return self._when_stale(dependency, known)
        if known is None or known.state in _GOES_AHEAD:
            return False
        if known.state is BreakerState.HALF_OPEN:
            return True
        raise BreakerOpen(dependency, known.state, self._retry_after(known))

    def _when_stale(self, dependency: str, known: _Known | None) -> bool:
        if self.when_stale == "open":
            return False
        raise BreakerUnavailable(dependency, BreakerState.CLOSED if known is None else known.state, self.watcher.seconds_since_contact())

    async def _acquire(self, dependency: str) -> bool:
        answer = await self.service.acquire(dependency)
        state = state_from_proto(answer.state)
        if answer.permitted:
            return state is BreakerState.HALF_OPEN
        retry_after_s = answer.retry_after.ToNanoseconds() / 1e9 if answer.HasField("retry_after") else None
        raise BreakerOpen(dependency, state, retry_after_s)

    @staticmethod
    def _retry_after(known: _Known) -> float | None:
        if known.state is not BreakerState.OPEN or known.open_until is None:
            return None
        return max(0.0, known.open_until - time.monotonic())

    # --- the mirror ------------------------------------------------------------------------

    async def _resume_from(self) -> Position:
        return self._position

    async def _follow(self) -> None:
        """Applies the stream's events (heartbeats only keep the watcher's contact time fresh)."""
        async for event in self.watcher.events():
            if isinstance(event, Snapshot):
                self._apply_snapshot(event)
            elif isinstance(event, Transition):
                self._apply_transition(event)

    def _apply_snapshot(self, snapshot: Snapshot) -> None:
        now_wall, now = time.time(), time.monotonic()
        known = {}
        for message in snapshot.messages:
            state = state_from_proto(message.state)
            open_until = None
            if message.HasField("open_until_time"):
                open_until = now + (message.open_until_time.ToNanoseconds() / 1e9 - now_wall)
            known[message.dependency] = _Known(state, open_until)
        self._known = known  # a snapshot replaces what was known: absent breakers are closed
        self._position = Position(snapshot.epoch, snapshot.revision)
        self._snapshot_seen.set()

    def _apply_transition(self, transition: Transition) -> None:
        if self._position.revision is not None and transition.revision <= self._position.revision:
            return  # seen already (a replay after a reconnect)
        self._known[transition.dependency] = _Known(transition.to_state)
        self._position = Position(transition.epoch or self._position.epoch, transition.revision)
        if transition.to_state is BreakerState.OPEN:
            self._tasks.append(asyncio.create_task(self._learn_open_until(transition.dependency)))

    async def _learn_open_until(self, dependency: str) -> None:
        """A transition does not say when the OPEN wait ends; one read of the breaker does, so a
        refusal can say when a retry makes sense."""
        with suppress(grpc.aio.AioRpcError):
            breaker = await self.service.get(dependency)
            known = self._known.get(dependency)
            if known is not None and known.state is BreakerState.OPEN and breaker.HasField("open_until_time"):
                known.open_until = time.monotonic() + (breaker.open_until_time.ToNanoseconds() / 1e9 - time.time())
        self._tasks = [t for t in self._tasks if not t.done()]

    # --- outcomes --------------------------------------------------------------------------

    async def _send_outcomes(self) -> None:
        """Keeps one RecordOutcomeBatches stream open: a flusher cuts and writes batches, a
        reader takes the acknowledgements; when either ends (a lost stream, a late
        acknowledgement) the stream is re-opened and every unacknowledged batch is sent again
        (same ids, so counted once)."""
        backoff = Backoff(0.05, 2.0)
        stub = breaker_pb2_grpc.BreakerServiceStub(self._channel)
        while True:
            call = stub.RecordOutcomeBatches(metadata=self._metadata)
            if self._outcomes.in_flight:
                self._outcomes.ack_awaited_since = time.monotonic()  # sent again on this stream
            tasks = {
                asyncio.create_task(self._flush(call)),
                asyncio.create_task(self._read_acks(call, backoff)),
                asyncio.create_task(self._expect_acks()),
            }
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = None if task.cancelled() else task.exception()
                    log.warning("outcome stream to %s lost (%r); unacknowledged batches are sent again", self.target, error)
            finally:
                for task in tasks:
                    task.cancel()
                call.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            await backoff.wait()

    async def _expect_acks(self) -> None:
        """Ends the stream when a batch waits longer than `ack_timeout_s` for its
        acknowledgement. A watchdog beside the reader, not a timeout on `call.read()`:
        cancelling a read cancels the whole call, which then ended silently while idle."""
        while True:
            await asyncio.sleep(self._ack_timeout_s / 4)
            since = self._outcomes.ack_awaited_since
            if since is not None and time.monotonic() - since > self._ack_timeout_s:
                raise TimeoutError(f"no acknowledgement within {self._ack_timeout_s:g}s")

    async def _read_acks(self, call: grpc.aio.StreamStreamCall, backoff: Backoff) -> None:
        while True:
            ack = await call.read()
            if ack is grpc.aio.EOF:
                await call  # raises the stream's error, if it ended with one
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "stream ended")
            self._outcomes.acknowledge(ack)
            backoff.reset()

    async def _flush(self, call: grpc.aio.StreamStreamCall) -> None:
        outcomes = self._outcomes
        for batch in list(outcomes.in_flight):  # sent before, not acknowledged: again, same ids
            await call.write(batch)
        while True:
            outcomes.idle = True
            if not outcomes.waiting:
                await outcomes.wake.wait()
            outcomes.wake.clear()
            outcomes.idle = False
            if len(outcomes.waiting) < outcomes.batch_size and not outcomes.urgent:
                await asyncio.sleep(outcomes.flush_interval_s)
            outcomes.urgent = False
            while outcomes.waiting:
                await call.write(outcomes.cut())


class SyncBreakerClient(SyncFacade[BreakerClient]):
    """`BreakerClient` for threaded callers: `with breakers.guard("openai"): call_openai()`.

    The client runs on its own loop thread; a closed breaker's guard runs in the caller's
    thread with no hop, a half-open one asks breaker_svc for a permit through the loop."""

    def __init__(self, target: str, **options: Any) -> None:
        super().__init__(lambda: BreakerClient(target, **options))

    def guard(self, dependency: str, policy: OutcomePolicy | None = None) -> Guard:
        return self.client.guard(dependency, policy)

    def state(self, dependency: str) -> BreakerState:
        return self.client.state(dependency)
