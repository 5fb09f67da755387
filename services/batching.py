"""Group commit: concurrent requests of one kind share one round of work.

Every unary call that writes pays its round trips to the database (a pool checkout, BEGIN, the
statement, COMMIT) whether it carries one item or a thousand. `GroupCommit` lets concurrent
calls share them: a call hands in its part (its items) and waits; one flush per key at a time
runs the parts queued for that key as one batch (one transaction, set-based statements) and
hands each call the results of its own items. There is no timer: a call that finds its key idle
is flushed at once, so a lone call waits for nothing, and under load a flush takes whatever
queued while the previous one ran (smart batching, as group commit in a database log). Waiting
parts that fill a whole flush do not wait: they start another beside the running one (up to
`max_flushes` per key), so big batches keep the database's parallelism. Flushes of different
keys run side by side.

A flush runs in its own task, so a caller that goes away (a cancelled RPC) cancels neither the
work it shares with others nor its own part, queued or running: what a call handed in is done
(as a finish must be once asked for), and only its answer is dropped. If a flush of several parts fails with an
error `retry_alone` accepts (an error of the request, which rolled everything back), each part
runs again alone, so that only the part at fault gets the error.
"""

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Part(Generic[Item, Result]):
    items: Sequence[Item]
    answer: "asyncio.Future[list[Result]]"
    identities: frozenset[Hashable]


@dataclass
class _Queue(Generic[Item, Result]):
    parts: deque[_Part[Item, Result]] = field(default_factory=deque)
    waiting_items: int = 0
    flushers: int = 0


class GroupCommit(Generic[Key, Item, Result]):
    """`run(key, items)` does the work of one flush: it gets the items of every part taken, in
    order, and returns one result per item, in the same order.

    `max_items` bounds a flush (a part larger than it runs alone). `identity(item)`, when
    given, keeps two parts naming the same thing out of one flush: the later one waits for the
    next, so each sees the other's effect as if the calls had come one after the other."""

    def __init__(
        self,
        run: Callable[[Key, Sequence[Item]], Awaitable[Sequence[Result]]],
        *,
        max_items: int,
        retry_alone: Callable[[BaseException], bool],
        identity: Callable[[Item], Hashable] | None = None,
        max_flushes: int = 4,
    ) -> None:
        self._run = run
        self._max_items = max_items
        self._retry_alone = retry_alone
        self._identity = identity
        self._max_flushes = max_flushes
        self._queues: dict[Key, _Queue[Item, Result]] = {}
        self._flushers: set[asyncio.Task[None]] = set()  # referenced until done

    async def submit(self, key: Key, items: Sequence[Item]) -> list[Result]:
        """The results of `items`, once a flush of `key` has run them."""
        identities = frozenset(self._identity(item) for item in items) if self._identity else frozenset()
        part = _Part(items, asyncio.get_running_loop().create_future(), identities)
        queue = self._queues.setdefault(key, _Queue())
        queue.parts.append(part)
        queue.waiting_items += len(items)
        if queue.flushers == 0 or (queue.waiting_items >= self._max_items and queue.flushers < self._max_flushes):
            queue.flushers += 1
            flusher = asyncio.create_task(self._flush_until_empty(key, queue))
            self._flushers.add(flusher)
            flusher.add_done_callback(self._flushers.discard)
        return await part.answer

    async def _flush_until_empty(self, key: Key, queue: _Queue[Item, Result]) -> None:
        try:
            while queue.parts:
                taken = self._take(queue.parts)
                queue.waiting_items -= sum(len(part.items) for part in taken)
                await self._flush(key, taken)
        finally:
            queue.flushers -= 1
            if not queue.flushers and not queue.parts:
                del self._queues[key]

    def _take(self, waiting: deque[_Part[Item, Result]]) -> list[_Part[Item, Result]]:
        """The first waiting part, then each later one that fits under `max_items` and names
        nothing the flush names already (in arrival order; the others stay for the next)."""
        taken, skipped = [waiting.popleft()], []
        count, named = len(taken[0].items), set(taken[0].identities)
        while waiting and count < self._max_items:
            part = waiting.popleft()
            if count + len(part.items) > self._max_items or not named.isdisjoint(part.identities):
                skipped.append(part)
                continue
            taken.append(part)
            count += len(part.items)
            named |= part.identities
        waiting.extendleft(reversed(skipped))
        return taken

    async def _flush(self, key: Key, parts: list[_Part[Item, Result]]) -> None:
        try:
            results = await self._run(key, [item for part in parts for item in part.items])
        except Exception as error:  # noqa: BLE001 - handed to the callers, who raise it
            if len(parts) > 1 and self._retry_alone(error):
                for part in parts:
                    await self._flush(key, [part])
                return
            for part in parts:
                _answer(part, error=error)
            return
        except BaseException:  # the flush itself cancelled (shutdown): nobody waits for ever
            for part in parts:
                part.answer.cancel()
            raise
        offset = 0
        for part in parts:
            _answer(part, list(results[offset:offset + len(part.items)]))
            offset += len(part.items)


def _answer(part: _Part[Item, Result], results: list[Result] | None = None, error: BaseException | None = None) -> None:
    if part.answer.done():  # the caller went away meanwhile
        return
    if error is not None:
        part.answer.set_exception(error)
    else:
        part.answer.set_result(results or [])
