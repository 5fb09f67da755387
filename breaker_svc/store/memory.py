"""The embedded default store: breakers in a dict, the event log in a bounded deque.

One asyncio lock makes each mutation atomic within the process; there is no other writer, so
fn runs once. The log keeps the newest `retention` events; older revisions are "not retained".
The log lives as long as the process: each store gets a new epoch, so a subscriber resuming with
a revision from before a restart gets a reset snapshot, not the new log's events after it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import Callable

from breaker_svc.domain import Breaker, BreakerState
from breaker_svc.store import Event, MutateFn, Mutation, R, Snapshot, new_epoch


class MemoryStore:
    def __init__(self, retention: int = 10_000, clock: Callable[[], float] = time.time) -> None:
        self._breakers: dict[str, Breaker] = {}
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
