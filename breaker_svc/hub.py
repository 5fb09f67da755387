"""The transition hub: one task per process follows the store's log and fans it out.

The hub keeps one ring of the most recent items it offered (events, and resets of the log), each
at a sequence number; every WatchTransitions stream is a subscriber with a cursor into that ring.
Nothing is copied per subscriber and nothing is ever dropped for one: a subscriber reads at its
own pace while the ring still holds its next item. One that falls more than the ring's size
(BREAKER_WATCH_BUFFER: revisions, as every event is one revision) behind has its stream ended
with RESOURCE_EXHAUSTED, naming the revision to resume from; as it is behind, the ring has already
moved on, but the store's log still holds what it missed, so it resumes without a gap. Prompt
subscribers beside it are not affected. When the log itself breaks under the hub (trimmed past
it, or lost, e.g. Redis flushed: its epoch changed), every subscriber gets a fresh snapshot marked
reset.

A log that went back within one epoch (Redis restarted from an older save: the store's revision
is below the hub's position, or below the revision a resuming subscriber applied in that epoch)
must not reuse those revisions: the hub rotates the epoch first (`rotate_epoch_if_behind`), so the
reset carries a new epoch and every stream, here or on another replica, starts over. (The Redis
store rotates on a restart by itself, see incarnation.lua; this catches what the run_id does not.)

Revisions only mean something within an epoch (one incarnation of the log). Every stream knows
the epoch its cursor is in, and passes over what the ring holds from another epoch: the reset
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
# Before it overwrites items a reading subscriber has not read yet, the hub waits this long for
# it to catch up (a prompt reader that did not get the CPU between two slices); a subscriber that
# read nothing for this long is not waited for: it is stopped, and is left to fall behind.
_CATCH_UP_S = 0.05


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

@dataclass(frozen=True)
class _Reset:
    snapshot: Snapshot


class _Ring:
    """The last `size` items offered, item n (counting from 0 since the hub started) in slot
    n % size: appending overwrites the oldest. `head` is the number of the next item."""

    def __init__(self, size: int) -> None:
        self._slots: list[object] = [None] * size
        self.size = size
        self.head = 0

    def append(self, item: object) -> None:
        self._slots[self.head % len(self._slots)] = item
        self.head += 1

    @property
    def oldest(self) -> int:
        return max(0, self.head - len(self._slots))

    def __getitem__(self, number: int) -> object:
        return self._slots[number % len(self._slots)]


class _Subscriber:
    def __init__(self, dependencies: frozenset[str] | None, next_item: int) -> None:
        self.dependencies = dependencies
        self.next_item = next_item  # the ring number of the next item it reads
        self.read_at = time.monotonic()  # when it last read (or subscribed)

    def wants(self, dependency: str) -> bool:
        return self.dependencies is None or dependency in self.dependencies


class _FellBehind(Exception):
    pass


class TransitionHub:
    def __init__(
        self, store: BreakerStore, *, buffer_size: int, heartbeat_s: float, poll_timeout_s: float = 1.0
    ) -> None:
        self._store = store
        self._ring = _Ring(buffer_size)
        self._appended = asyncio.Event()  # set (and replaced) whenever the ring grows
        self._read = asyncio.Event()  # set whenever a subscriber reads from the ring
        # A poll appends at most half the ring, then the hub yields: a burst of transitions never
        # ends a stream that keeps reading, only one that lags behind.
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
        self._appended.set()  # every waiting stream wakes, sees `_closed` and ends
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
                    await self._make_room(len(events))
                    self._publish(events)
                    await asyncio.sleep(0)  # let the streams drain before the next slice
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - a store outage must not end the hub
                log.warning("hub_follow_failed", position=self.position, exc_info=True)
                await asyncio.sleep(_RETRY_S)

    async def _make_room(self, count: int) -> None:
        """Waits (at most _CATCH_UP_S) for the subscribers that are reading to read what the
        next `count` items would overwrite; stopped ones are not waited for."""
        deadline = time.monotonic() + _CATCH_UP_S
        while (now := time.monotonic()) < deadline:
            overwritten_below = self._ring.head + count - self._ring.size
            if not any(
                self._ring.oldest <= s.next_item < overwritten_below and now - s.read_at < _CATCH_UP_S for s in self._subscribers
            ):
                return
            self._read.clear()
            try:
                async with asyncio.timeout(deadline - now):
                    await self._read.wait()
            except TimeoutError:
                return

    def _offer(self, item: object) -> None:
        self._ring.append(item)
        self._appended.set()
        self._appended = asyncio.Event()

    def _publish(self, events: list[Event]) -> None:
        for event in events:
            self._offer(TransitionItem(event, self.epoch))
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
        self._offer(_Reset(snapshot))
        for breaker in snapshot.breakers:
            metrics.observe_state(breaker.dependency, breaker.state)

    async def watch(
        self, from_revision: int | None, dependencies: frozenset[str] | None, epoch: str | None = None
    ) -> AsyncIterator[WatchItem]:
        """Snapshot or replay, then live transitions and heartbeats, until the hub closes.

        The subscriber registers (its cursor at the ring's head) before it reads the store, so
        whatever is committed meanwhile is in the ring after its cursor; what the snapshot or
        replay already covered is skipped by revision: no gap and no duplicate. A replay happens only within `epoch` (the
        one `from_revision` belongs to; without it, the log's current epoch): a revision of
        another epoch gets a reset snapshot, whatever its number.
        """
        subscriber = _Subscriber(dependencies, self._ring.head)
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
            try:
                item = await self._next(subscriber, cursor, epoch, last_sent + self._heartbeat_s - time.monotonic())
            except _FellBehind:
                raise ResourceExhausted(f"fell behind at revision {cursor}; resume with from_revision={cursor}") from None
            if item is None or self._closed:
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
                    continue  # another log's event: the reset between the two logs is in the ring
                if item.event.revision <= cursor:
                    continue  # already in the snapshot or the replay
                cursor = item.event.revision
                if not subscriber.wants(item.event.dependency):
                    continue
            yield item
            last_sent = time.monotonic()

    async def _next(self, subscriber: _Subscriber, cursor: int, epoch: str, wait_s: float) -> object:
        """The subscriber's next item from the ring, a heartbeat once `wait_s` has passed quietly,
        or None when the hub closed. Raises _FellBehind when the ring has overwritten it."""
        appended = self._appended  # taken before looking: an append after this wakes the wait
        if subscriber.next_item < self._ring.oldest:
            raise _FellBehind()
        if subscriber.next_item < self._ring.head:
            item = self._ring[subscriber.next_item]
            subscriber.next_item += 1
            subscriber.read_at = time.monotonic()
            self._read.set()
            return item
        if self._closed:
            return None
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation.
            async with asyncio.timeout(max(0.0, wait_s)):
                await appended.wait()
        except TimeoutError:
            return HeartbeatItem(self._progress(subscriber, cursor, epoch), time.time(), epoch)
        return await self._next(subscriber, cursor, epoch, 0.0) if not self._closed else None

    def _progress(self, subscriber: _Subscriber, cursor: int, epoch: str) -> int:
        """The revision (in `epoch`) up to which the subscriber has had everything meant for it.

        Once it has read the whole ring, that includes whatever the hub has passed over (other
        dependencies' events) in the same epoch; the hub appends and advances `position` in one
        step, so this cannot run ahead.
        """
        if subscriber.next_item == self._ring.head and self.epoch == epoch:
            return max(cursor, self.position)
        return cursor
