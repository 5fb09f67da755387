"""The transition hub: one task per process follows the store's log and fans it out.

Each WatchTransitions stream is a subscriber with its own bounded queue. The hub never drops a
message for a subscriber: when one's queue is full, the subscriber is marked, gets nothing more,
and its stream ends with RESOURCE_EXHAUSTED once it has drained what it was given, naming the
revision to resume from. When the log itself breaks under the hub (trimmed past it, or lost, e.g.
Redis flushed: the revision went backwards), every subscriber gets a fresh snapshot marked reset.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from breaker_svc import metrics
from breaker_svc.domain import Breaker
from breaker_svc.store import BreakerStore, Event, Snapshot
from services.errors import ResourceExhausted

log = structlog.get_logger()

_BATCH = 500
_RETRY_S = 0.5


@dataclass(frozen=True)
class SnapshotItem:
    revision: int
    breakers: tuple[Breaker, ...]
    now: float
    reset: bool


@dataclass(frozen=True)
class TransitionItem:
    event: Event


@dataclass(frozen=True)
class HeartbeatItem:
    revision: int
    at: float


WatchItem = SnapshotItem | TransitionItem | HeartbeatItem

_CLOSE = object()


@dataclass(frozen=True)
class _Reset:
    snapshot: Snapshot


class _Subscriber:
    def __init__(self, dependencies: frozenset[str] | None, buffer: int) -> None:
        self.dependencies = dependencies
        self.queue: asyncio.Queue[object] = asyncio.Queue(maxsize=buffer)
        self.overflowed = False

    def wants(self, dependency: str) -> bool:
        return self.dependencies is None or dependency in self.dependencies

    def offer(self, item: object) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True


class TransitionHub:
    def __init__(
        self, store: BreakerStore, *, buffer_size: int, heartbeat_s: float, poll_timeout_s: float = 1.0
    ) -> None:
        self._store = store
        self._buffer_size = buffer_size
        self._heartbeat_s = heartbeat_s
        self._poll_timeout_s = poll_timeout_s
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.position = 0  # every event up to here has been offered to the subscribers

    async def start(self) -> None:
        snapshot = await self._store.snapshot(None)
        self.position = snapshot.revision
        for breaker in snapshot.breakers:
            metrics.observe_state(breaker.dependency, breaker.state)
        self._task = asyncio.create_task(self._follow(), name="transition-hub")

    async def close(self) -> None:
        """Ends every stream (cleanly) and stops following the log."""
        self._closed = True
        for subscriber in self._subscribers:
            try:
                subscriber.queue.put_nowait(_CLOSE)
            except asyncio.QueueFull:
                pass  # it is not waiting: it sees `_closed` before its next message
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5.0)

    async def _follow(self) -> None:
        while True:
            try:
                events = await self._store.tail(self.position, self._poll_timeout_s, _BATCH)
                if events is None:
                    await self._reset()
                else:
                    self._publish(events)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a store outage must not end the hub
                log.warning("hub_follow_failed", position=self.position, exc_info=True)
                await asyncio.sleep(_RETRY_S)

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            for subscriber in self._subscribers:
                if subscriber.wants(event.dependency):
                    subscriber.offer(TransitionItem(event))
            self.position = event.revision
            metrics.observe_state(event.dependency, event.change.to_state)

    async def _reset(self) -> None:
        snapshot = await self._store.snapshot(None)
        log.warning("hub_log_lost", position=self.position, revision=snapshot.revision)
        self.position = snapshot.revision
        for subscriber in self._subscribers:
            subscriber.offer(_Reset(snapshot))
        for breaker in snapshot.breakers:
            metrics.observe_state(breaker.dependency, breaker.state)

    async def watch(self, from_revision: int | None, dependencies: frozenset[str] | None) -> AsyncIterator[WatchItem]:
        """Snapshot or replay, then live transitions and heartbeats, until the hub closes.

        The subscriber registers before it reads the store, so whatever is committed meanwhile is
        in its queue; the queue's copies of what the snapshot or replay already covered are
        skipped by revision: no gap and no duplicate.
        """
        subscriber = _Subscriber(dependencies, self._buffer_size)
        self._subscribers.add(subscriber)
        metrics.WATCH_SUBSCRIBERS.inc()
        try:
            cursor = from_revision
            if from_revision is not None:
                while not self._closed:
                    events = await self._store.events_after(cursor, _BATCH)
                    if events is None:
                        cursor = None
                        break
                    if not events:
                        break
                    for event in events:
                        cursor = event.revision
                        if subscriber.wants(event.dependency):
                            yield TransitionItem(event)
            if cursor is None:
                snapshot = await self._store.snapshot(dependencies)
                cursor = snapshot.revision
                yield SnapshotItem(snapshot.revision, snapshot.breakers, snapshot.now, reset=from_revision is not None)
            async for item in self._live(subscriber, cursor):
                yield item
        finally:
            self._subscribers.discard(subscriber)
            metrics.WATCH_SUBSCRIBERS.dec()

    async def _live(self, subscriber: _Subscriber, cursor: int) -> AsyncIterator[WatchItem]:
        last_sent = time.monotonic()
        while not self._closed:
            if subscriber.overflowed and subscriber.queue.empty():
                raise ResourceExhausted(f"fell behind at revision {cursor}; resume with from_revision={cursor}")
            item = await self._next(subscriber, cursor, last_sent + self._heartbeat_s - time.monotonic())
            if item is _CLOSE or self._closed:
                return
            if isinstance(item, _Reset):
                cursor = item.snapshot.revision
                breakers = tuple(b for b in item.snapshot.breakers if subscriber.wants(b.dependency))
                item = SnapshotItem(cursor, breakers, item.snapshot.now, reset=True)
            elif isinstance(item, TransitionItem):
                if item.event.revision <= cursor:
                    continue  # already in the snapshot or the replay
                cursor = item.event.revision
            yield item
            last_sent = time.monotonic()

    async def _next(self, subscriber: _Subscriber, cursor: int, wait_s: float) -> object:
        """The subscriber's next queued item, or a heartbeat once `wait_s` has passed quietly."""
        try:
            return subscriber.queue.get_nowait()
        except asyncio.QueueEmpty:
            pass
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(max(0.0, wait_s)):
                return await subscriber.queue.get()
        except TimeoutError:
            return HeartbeatItem(self._progress(subscriber, cursor), time.time())

    def _progress(self, subscriber: _Subscriber, cursor: int) -> int:
        """The revision up to which the subscriber has had everything meant for it.

        With nothing queued, that includes whatever the hub has passed over (other dependencies'
        events); the hub offers and advances `position` in one step, so this cannot run ahead.
        """
        if subscriber.queue.empty() and not subscriber.overflowed:
            return max(cursor, self.position)
        return cursor
