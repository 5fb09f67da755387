"""The embedded default store: breakers in a dict, the event log in a bounded deque.

One asyncio lock makes each mutation atomic within the process; there is no other writer, so
fn runs once. Batch progress (`mutate_batch`) lives in a dict beside the breakers, each batch
forgotten `batch_retention_s` after its first commit. The log keeps the newest `retention` events; older revisions are "not retained".
The log lives as long as the process: each store gets a new epoch, so a subscriber resuming with
a revision from before a restart gets a reset snapshot, not the new log's events after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable

from breaker_svc.domain import Breaker, BreakerState, Change
from breaker_svc.store import BATCH_RETENTION_S, BatchFn, Event, MutateFn, Mutation, R, Snapshot, new_epoch


class MemoryStore:
    def __init__(
        self, retention: int = 10_000, clock: Callable[[], float] = time.time, batch_retention_s: float = BATCH_RETENTION_S
    ) -> None:
        self._breakers: dict[str, Breaker] = {}
        # batch id -> {dependency: outcomes counted}; ids in order of first commit, with expiry.
        self._batches: dict[str, dict[str, int]] = {}
        self._batch_expiries: deque[tuple[float, str]] = deque()
        self._batch_retention_s = batch_retention_s
        self._events: deque[Event] = deque(maxlen=retention)
        self._revision = 0
        self._epoch = new_epoch()
        self._lock = asyncio.Lock()
        self._appended = asyncio.Condition()
        self._clock = clock

    async def mutate(self, dependency: str, fn: MutateFn[R]) -> Mutation[R]:
        async with self._lock:
            now = self._clock()
            breaker, change, result = fn(self._breakers.get(dependency), now)
            event = None
            if change is not None:
                self._revision += 1
                breaker = dataclasses.replace(breaker, revision=self._revision)
                event = Event(self._revision, change)
                self._events.append(event)
            self._breakers[dependency] = breaker
        if event is not None:
            async with self._appended:
                self._appended.notify_all()
        return Mutation(breaker, event, result, now)

    async def mutate_batch(self, dependency: str, batch_id: str, fn: BatchFn) -> Mutation[tuple[int, int]]:
        def counting(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, tuple[int, int]]:
            # Runs under the store's lock, once: reading and writing the progress here is atomic
            # with the breaker's change.
            self._forget_batches_before(now)
            progress = self._batches.get(batch_id) or {}
            before = progress.get(dependency, 0)
            breaker, change, after = fn(b, now, before)
            if after != before:
                if batch_id not in self._batches:
                    self._batches[batch_id] = progress
                    self._batch_expiries.append((now + self._batch_retention_s, batch_id))
                progress[dependency] = after
            return breaker, change, (before, after)

        return await self.mutate(dependency, counting)

    def _forget_batches_before(self, now: float) -> None:
        while self._batch_expiries and self._batch_expiries[0][0] <= now:
            self._batches.pop(self._batch_expiries.popleft()[1], None)

    async def get(self, dependency: str) -> Breaker | None:
        return self._breakers.get(dependency)

    async def list(self, after: str | None, limit: int, state: BreakerState | None) -> list[Breaker]:
        names = sorted(n for n in self._breakers if after is None or n > after)
        breakers = (self._breakers[n] for n in names)
        return [b for b in breakers if state is None or b.state == state][:limit]

    async def snapshot(self, dependencies: frozenset[str] | None) -> Snapshot:
        names = sorted(self._breakers if dependencies is None else dependencies & self._breakers.keys())
        return Snapshot(self._revision, tuple(self._breakers[n] for n in names), self._clock(), self._epoch)

    async def epoch(self) -> str:
        return self._epoch

    async def check_incarnation(self) -> bool:
        return False  # the log lives and dies with this object: it cannot outlive its epoch

    async def rotate_epoch_if_behind(self, epoch: str, revision: int) -> bool:
        # This log never goes back, so only a subscriber's claim can be ahead of it; it is
        # treated as the Redis store treats it, so both stores answer a resume alike.
        if epoch != self._epoch or revision <= self._revision:
            return False
        self._epoch = new_epoch()
        return True

    async def events_after(self, revision: int, limit: int, epoch: str | None = None) -> list[Event] | None:
        if epoch is not None and epoch != self._epoch:
            return None
        if revision > self._revision:
            return None
        if revision == self._revision:
            return []
        if not self._events or self._events[0].revision > revision + 1:
            return None
        start = revision + 1 - self._events[0].revision
        return [self._events[i] for i in range(start, min(start + limit, len(self._events)))]

    async def tail(self, revision: int, timeout_s: float, limit: int, epoch: str | None = None) -> list[Event] | None:
        if epoch is not None and epoch != self._epoch:
            return None
        if self._revision == revision:
            async with self._appended:
                try:
                    async with asyncio.timeout(timeout_s):
                        await self._appended.wait_for(lambda: self._revision != revision)
                except TimeoutError:
                    return []
        return await self.events_after(revision, limit, epoch)

    async def current_revision(self) -> int:
        return self._revision

    async def due_for_timer(self) -> list[str]:
        now = self._clock()
        return sorted(
            b.dependency for b in self._breakers.values() if b.timer_due_at is not None and b.timer_due_at <= now
        )

    async def forget_timer(self, dependency: str) -> None:
        return None  # the schedule is derived from the breakers themselves: no stale entries

    async def now(self) -> float:
        return self._clock()

    async def close(self) -> None:
        return None
