"""The transition hub: one task per process follows the store's log and fans it out.

Each WatchTransitions stream is a subscriber with its own bounded queue. The hub never drops a
message for a subscriber: when one's queue is full, the subscriber is marked, gets nothing more,
and its stream ends with RESOURCE_EXHAUSTED once it has drained what it was given, naming the
revision to resume from. When the log itself breaks under the hub (trimmed past it, or lost, e.g.
Redis flushed: its epoch changed), every subscriber gets a fresh snapshot marked reset.

A log that went back within one epoch (Redis restarted from an older save: the store's revision
is below the hub's position, or below the revision a resuming subscriber applied in that epoch)
must not reuse those revisions: the hub rotates the epoch first (`rotate_epoch_if_behind`), so the
reset carries a new epoch and every stream, here or on another replica, starts over. (The Redis
store rotates on a restart by itself, see incarnation.lua; this catches what the run_id does not.)

Revisions only mean something within an epoch (one incarnation of the log). Every stream knows
the epoch its cursor is in, and passes over what the hub queued from another epoch: the reset
that moves the stream to the new epoch is on its way, since the hub offers it to every subscriber
in the same step as it moves to the new epoch itself.
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
    epoch: str


@dataclass(frozen=True)
class TransitionItem:
    event: Event
    epoch: str


@dataclass(frozen=True)
class HeartbeatItem:
    revision: int
    at: float
    epoch: str


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
        # A poll hands out at most half a subscriber's buffer, then the hub yields: a burst of
        # transitions never ends a stream that keeps reading, only one that lags behind.
        self._follow_batch = max(1, min(_BATCH, buffer_size // 2))
        self._heartbeat_s = heartbeat_s
        self._poll_timeout_s = poll_timeout_s
        self._subscribers: set[_Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.position = 0  # every event up to here has been offered to the subscribers
        self.epoch = ""  # the epoch `position` is in

    async def start(self) -> None:
        snapshot = await self._store.snapshot(None)
        self.position, self.epoch = snapshot.revision, snapshot.epoch
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
                events = await self._store.tail(self.position, self._poll_timeout_s, self._follow_batch, self.epoch)
                if events is None:
                    await self._reset()
                else:
                    self._publish(events)
                    await asyncio.sleep(0)  # let the streams drain before the next slice
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a store outage must not end the hub
                log.warning("hub_follow_failed", position=self.position, exc_info=True)
                await asyncio.sleep(_RETRY_S)

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            for subscriber in self._subscribers:
                if subscriber.wants(event.dependency):
                    subscriber.offer(TransitionItem(event, self.epoch))
            self.position = event.revision
            metrics.observe_state(event.dependency, event.change.to_state)

    async def _reset(self) -> None:
        # Below our position in the same epoch: the log went back, and its next revisions would
        # pass for ones already offered. A new epoch makes every subscriber start over.
        if await self._store.rotate_epoch_if_behind(self.epoch, self.position):
            log.warning("hub_log_went_back", position=self.position, epoch=self.epoch)
        snapshot = await self._store.snapshot(None)
        log.warning(
            "hub_log_lost", position=self.position, epoch=self.epoch, revision=snapshot.revision, new_epoch=snapshot.epoch
        )
        self.position, self.epoch = snapshot.revision, snapshot.epoch
        for subscriber in self._subscribers:
            subscriber.offer(_Reset(snapshot))
        for breaker in snapshot.breakers:
            metrics.observe_state(breaker.dependency, breaker.state)

    async def watch(
        self, from_revision: int | None, dependencies: frozenset[str] | None, epoch: str | None = None
    ) -> AsyncIterator[WatchItem]:
        """Snapshot or replay, then live transitions and heartbeats, until the hub closes.

        The subscriber registers before it reads the store, so whatever is committed meanwhile is
        in its queue; the queue's copies of what the snapshot or replay already covered are
        skipped by revision: no gap and no duplicate. A replay happens only within `epoch` (the
        one `from_revision` belongs to; without it, the log's current epoch): a revision of
        another epoch gets a reset snapshot, whatever its number.
        """
        subscriber = _Subscriber(dependencies, self._buffer_size)
        self._subscribers.add(subscriber)
        metrics.WATCH_SUBSCRIBERS.inc()
        claimed_epoch = epoch  # only a subscriber naming its epoch claims a revision in it
        try:
            cursor = from_revision
            if from_revision is not None:
                if epoch is None:
                    epoch = await self._store.epoch()  # taken to be in the current log, as before epochs
                while not self._closed:
                    events = await self._store.events_after(cursor, _BATCH, epoch)
                    if events is None:
                        if claimed_epoch is not None and from_revision is not None:
                            # The subscriber applied `from_revision` in this epoch: if the log is
                            # now below it, it went back, and needs a new epoch before anyone is
                            # handed its next revisions (no-op if the epoch is another one).
                            await self._store.rotate_epoch_if_behind(claimed_epoch, from_revision)
                        cursor = None
                        break
                    if not events:
                        break
                    for event in events:
                        cursor = event.revision
                        if subscriber.wants(event.dependency):
                            yield TransitionItem(event, epoch)
            if cursor is None:
                snapshot = await self._store.snapshot(dependencies)
                cursor, epoch = snapshot.revision, snapshot.epoch
                yield SnapshotItem(
                    snapshot.revision, snapshot.breakers, snapshot.now, reset=from_revision is not None, epoch=snapshot.epoch
                )
            assert epoch is not None
            async for item in self._live(subscriber, cursor, epoch):
                yield item
        finally:
            self._subscribers.discard(subscriber)
            metrics.WATCH_SUBSCRIBERS.dec()

    async def _live(self, subscriber: _Subscriber, cursor: int, epoch: str) -> AsyncIterator[WatchItem]:
        last_sent = time.monotonic()
        while not self._closed:
            if subscriber.overflowed and subscriber.queue.empty():
                raise ResourceExhausted(f"fell behind at revision {cursor}; resume with from_revision={cursor}")
            item = await self._next(subscriber, cursor, epoch, last_sent + self._heartbeat_s - time.monotonic())
            if item is _CLOSE or self._closed:
                return
            if isinstance(item, _Reset):
                snapshot = item.snapshot
                if snapshot.epoch == epoch and snapshot.revision <= cursor:
                    continue  # the stream is past it already (it read the new log itself)
                cursor, epoch = snapshot.revision, snapshot.epoch
                breakers = tuple(b for b in snapshot.breakers if subscriber.wants(b.dependency))
                item = SnapshotItem(cursor, breakers, snapshot.now, reset=True, epoch=epoch)
            elif isinstance(item, TransitionItem):
                if item.epoch != epoch:
                    continue  # another log's event: the reset between the two logs is queued
                if item.event.revision <= cursor:
                    continue  # already in the snapshot or the replay
                cursor = item.event.revision
            yield item
            last_sent = time.monotonic()

    async def _next(self, subscriber: _Subscriber, cursor: int, epoch: str, wait_s: float) -> object:
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
            return HeartbeatItem(self._progress(subscriber, cursor, epoch), time.time(), epoch)

    def _progress(self, subscriber: _Subscriber, cursor: int, epoch: str) -> int:
        """The revision (in `epoch`) up to which the subscriber has had everything meant for it.

        With nothing queued, that includes whatever the hub has passed over (other dependencies'
        events) in the same epoch; the hub offers and advances `position` in one step, so this
        cannot run ahead.
        """
        if subscriber.queue.empty() and not subscriber.overflowed and self.epoch == epoch:
            return max(cursor, self.position)
        return cursor
