"""The production store: breakers, the revision counter and the event stream in Redis.

Keys (all under one prefix, none with a TTL):
  <prefix>breaker:<dependency>  hash {json, revision, state}: the breaker
  <prefix>dependencies          zset (score 0): every dependency name, for lexical paging
  <prefix>revision              the deployment-wide revision counter
  <prefix>epoch                 the log's incarnation id, set by whichever replica touches the log
                                first; a flushed or restarted Redis gets a new one, so subscribers
                                can tell the new log's revisions from the old one's
  <prefix>run_id                the `run_id` of the Redis process the epoch was made under
                                (incarnation.lua): a restart, perhaps from an older save that
                                took the revisions back, replaces the epoch
  <prefix>events                stream of transitions, id <revision>-0, MAXLEN ~ retention
  <prefix>timers                zset: breakers scored by Breaker.timer_due_at (OPEN wait, HALF_OPEN deadline)
  <prefix>batch:<batch id>      hash {dependency: outcomes counted} of one outcome batch, written
                                by the commit script with the breaker it counts on; the only keys
                                with a TTL (`batch_retention_s` from their first commit): a batch
                                id is remembered that long

A mutation reads the breaker with the server's clock (one script), runs the pure function, and
commits with a compare-and-swap script that also takes the revision and appends the event (and
ensures the epoch first, so nothing is ever appended to a log without an epoch or under an
epoch made by an earlier Redis process). The
JSON is stored with revision 0; the hash's `revision` field is the authoritative one, because
only the script knows the revision it takes.

Every Redis round trip is bounded by `op_timeout_s` with `asyncio.timeout` (a TimeoutError, which
callers see as UNAVAILABLE). The client gets no `socket_timeout`: with one, redis-py sends through
`asyncio.wait_for`, which on Python 3.11 swallows a cancellation that lands as the send completes,
so background tasks could not be stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable
from pathlib import Path

import redis.asyncio

from breaker_svc.domain import Breaker, BreakerState, Change
from breaker_svc.store import (
    BATCH_RETENTION_S,
    MAX_CAS_ATTEMPTS,
    BatchFn,
    Event,
    MutateFn,
    Mutation,
    R,
    Snapshot,
    new_epoch,
)
from services.errors import Aborted

_SCRIPTS = Path(__file__).parent
_LIST_CHUNK = 200


def _script(name: str) -> str:
    return (_SCRIPTS / f"{name}.lua").read_text()


def _with_incarnation(name: str) -> str:
    """A script that creates or names an epoch, with the run_id check (incarnation.lua) before it."""
    return _script("incarnation") + _script(name)


def _seconds(seconds: str | int, microseconds: str | int) -> float:
    return int(seconds) + int(microseconds) / 1_000_000


class RedisStore:
    def __init__(
        self,
        client: redis.asyncio.Redis,
        prefix: str = "breaker:",
        retention: int = 10_000,
        op_timeout_s: float = 5.0,
        batch_retention_s: float = BATCH_RETENTION_S,
    ) -> None:
        self._redis = client
        self._batch_retention_ms = max(1, round(batch_retention_s * 1000))
        self._timeout_s = op_timeout_s
        self._prefix = prefix
        self._retention = retention
        self._deps_key = f"{prefix}dependencies"
        self._revision_key = f"{prefix}revision"
        self._events_key = f"{prefix}events"
        self._timers_key = f"{prefix}timers"
        self._epoch_key = f"{prefix}epoch"
        self._run_id_key = f"{prefix}run_id"
        self._read = client.register_script(_script("read"))
        self._commit = client.register_script(_with_incarnation("commit"))
        self._snapshot = client.register_script(_with_incarnation("snapshot"))
        self._rotate = client.register_script(_with_incarnation("rotate"))
        self._due = client.register_script(_script("due"))
        self._forget_timer = client.register_script(_script("forget_timer"))

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "breaker:", retention: int = 10_000, batch_retention_s: float = BATCH_RETENTION_S
    ) -> "RedisStore":
        client = redis.asyncio.from_url(
            url,
            decode_responses=True,
            socket_timeout=None,  # see the module docstring; op_timeout_s bounds every call instead
            socket_connect_timeout=5,
            socket_keepalive=True,
            health_check_interval=30,
        )
        return cls(client, prefix, retention, batch_retention_s=batch_retention_s)

    def _breaker_key(self, dependency: str) -> str:
        return f"{self._prefix}breaker:{dependency}"

    async def mutate(self, dependency: str, fn: MutateFn[R]) -> Mutation[R]:
        return await self._mutate(dependency, lambda b, now, _counted: fn(b, now), None)

    async def mutate_batch(self, dependency: str, batch_id: str, fn: BatchFn) -> Mutation[tuple[int, int]]:
        def counting(b: Breaker | None, now: float, before: int) -> tuple[Breaker, Change | None, tuple[int, int]]:
            breaker, change, after = fn(b, now, before)
            return breaker, change, (before, after)

        return await self._mutate(dependency, counting, f"{self._prefix}batch:{batch_id}")

    async def _mutate(
        self, dependency: str, fn: Callable[[Breaker | None, float, int], tuple[Breaker, Change | None, R]], batch_key: str | None
    ) -> Mutation[R]:
        """Compare-and-swap on the breaker (and, with `batch_key`, on the batch's progress on
        it); fn gets that progress (0 without a batch) and, for a batch, returns (before, after)."""
        key = self._breaker_key(dependency)
        batch_keys = [] if batch_key is None else [batch_key]
        for attempt in range(MAX_CAS_ATTEMPTS):
            async with asyncio.timeout(self._timeout_s):
                raw, stored_revision, seconds, microseconds, counted = await self._read(keys=[key, *batch_keys], args=[dependency])
            now = _seconds(seconds, microseconds)
            current = _decode(raw, stored_revision) if raw else None
            breaker, change, result = fn(current, now, int(counted))
            new_json = _encode(breaker)
            progress = [] if batch_key is None else [int(counted), result[1], self._batch_retention_ms]  # type: ignore[index]
            if change is None and new_json == raw and (batch_key is None or progress[0] == progress[1]):
                return Mutation(dataclasses.replace(breaker, revision=int(stored_revision or 0)), None, result, now)
            async with asyncio.timeout(self._timeout_s):
                committed, revision = await self._commit(
                    keys=[
                        key,
                        self._deps_key,
                        self._revision_key,
                        self._events_key,
                        self._timers_key,
                        self._epoch_key,
                        self._run_id_key,
                        *batch_keys,
                    ],
                    args=[
                        raw or "",
                        new_json,
                        dependency,
                        change.to_json() if change is not None else "",
                        self._retention,
                        breaker.state.value,
                        _timer_due_at(breaker),
                        new_epoch(),
                        *progress,
                    ],
                )
            if committed:
                event = Event(int(revision), change) if change is not None else None
                return Mutation(dataclasses.replace(breaker, revision=int(revision)), event, result, now)
            await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 20)))
        raise Aborted(f"breaker {dependency!r} is changing too fast; retry")

    async def get(self, dependency: str) -> Breaker | None:
        async with asyncio.timeout(self._timeout_s):
            raw, revision = await self._redis.hmget(self._breaker_key(dependency), ["json", "revision"])
        return _decode(raw, revision) if raw else None

    async def list(self, after: str | None, limit: int, state: BreakerState | None) -> list[Breaker]:
        found: list[Breaker] = []
        start = f"({after}" if after is not None else "-"
        while len(found) < limit:
            async with asyncio.timeout(self._timeout_s):
                names = await self._redis.zrangebylex(self._deps_key, start, "+", start=0, num=_LIST_CHUNK)
                if not names:
                    break
                async with self._redis.pipeline(transaction=False) as pipe:
                    for name in names:
                        pipe.hmget(self._breaker_key(name), ["json", "revision", "state"])
                    rows = await pipe.execute()
            for raw, revision, stored_state in rows:
                if raw and (state is None or stored_state == state.value):
                    found.append(_decode(raw, revision))
            start = f"({names[-1]}"
        return found[:limit]

    async def snapshot(self, dependencies: frozenset[str] | None) -> Snapshot:
        which = ["all"] if dependencies is None else ["some", *sorted(dependencies)]
        async with asyncio.timeout(self._timeout_s):
            out = await self._snapshot(
                keys=[self._deps_key, self._revision_key, self._epoch_key, self._run_id_key],
                args=[f"{self._prefix}breaker:", new_epoch(), *which],
            )
        revision, seconds, microseconds, epoch, rest = int(out[0]), out[1], out[2], out[3], out[4:]
        breakers = tuple(_decode(rest[i + 1], rest[i + 2]) for i in range(0, len(rest), 3))
        return Snapshot(revision, breakers, _seconds(seconds, microseconds), epoch)

    async def epoch(self) -> str:
        return (await self._run_rotate("", 0))[1]

    async def check_incarnation(self) -> bool:
        """Replaces the epoch if it was made under another Redis process than the running one
        (restarted, perhaps from an older save). The scripts that commit or snapshot check this
        themselves; calling it periodically moves an idle log to its new epoch promptly."""
        return (await self._run_rotate("", 0))[0]

    async def rotate_epoch_if_behind(self, epoch: str, revision: int) -> bool:
        """Replaces the epoch if it is still `epoch` but its revision counter is below `revision`,
        one that was seen in it: the log went back, and its next revisions must not pass for the
        ones seen. Atomic and conditional, so replicas reporting one regression rotate once."""
        return (await self._run_rotate(epoch, revision))[0]

    async def _run_rotate(self, expected_epoch: str, revision: int) -> tuple[bool, str]:
        async with asyncio.timeout(self._timeout_s):
            rotated, epoch = await self._rotate(
                keys=[self._run_id_key, self._epoch_key, self._revision_key], args=[new_epoch(), expected_epoch, revision]
            )
        return bool(int(rotated)), epoch

    async def events_after(self, revision: int, limit: int, epoch: str | None = None) -> list[Event] | None:
        async with asyncio.timeout(self._timeout_s), self._redis.pipeline(transaction=True) as pipe:
            pipe.get(self._revision_key)
            pipe.xrange(self._events_key, min=f"{revision + 1}-0", max="+", count=limit)
            pipe.get(self._epoch_key)
            current, entries, current_epoch = await pipe.execute()
        if epoch is not None and current_epoch != epoch:
            return None  # `revision` counted in a log that is gone (e.g. Redis flushed)
        current = int(current or 0)
        if revision > current:
            return None  # the log was lost (e.g. Redis flushed): the caller must start over
        events = [Event(_revision_of(entry_id), Change.from_json(fields["change"])) for entry_id, fields in entries]
        if revision < current and (not events or events[0].revision != revision + 1):
            return None  # trimmed past `revision`
        return events

    async def tail(self, revision: int, timeout_s: float, limit: int, epoch: str | None = None) -> list[Event] | None:
        events = await self.events_after(revision, limit, epoch)
        if events != []:
            return events
        async with asyncio.timeout(timeout_s + self._timeout_s):
            await self._redis.xread({self._events_key: f"{revision}-0"}, count=1, block=max(1, int(timeout_s * 1000)))
        return await self.events_after(revision, limit, epoch)

    async def current_revision(self) -> int:
        async with asyncio.timeout(self._timeout_s):
            return int(await self._redis.get(self._revision_key) or 0)

    async def due_for_timer(self) -> list[str]:
        async with asyncio.timeout(self._timeout_s):
            return list(await self._due(keys=[self._timers_key]))

    async def forget_timer(self, dependency: str) -> None:
        async with asyncio.timeout(self._timeout_s):
            await self._forget_timer(keys=[self._timers_key, self._breaker_key(dependency)], args=[dependency])

    async def now(self) -> float:
        async with asyncio.timeout(self._timeout_s):
            seconds, microseconds = await self._redis.time()
        return _seconds(seconds, microseconds)

    async def close(self) -> None:
        await self._redis.aclose()


def _encode(breaker: Breaker) -> str:
    return dataclasses.replace(breaker, revision=0).to_json()


def _decode(raw: str, revision: str | int | None) -> Breaker:
    return dataclasses.replace(Breaker.from_json(raw), revision=int(revision or 0))


def _revision_of(entry_id: str) -> int:
    return int(entry_id.split("-", 1)[0])


def _timer_due_at(breaker: Breaker) -> str:
    return "" if breaker.timer_due_at is None else repr(breaker.timer_due_at)
