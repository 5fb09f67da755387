"""services.batching.GroupCommit: concurrent parts share flushes, each caller gets its own
results, and an error reaches only the part at fault."""

import asyncio
from collections.abc import Sequence

import pytest

from services.batching import GroupCommit


class Culprit(Exception):
    """An error of the request: a group that meets it runs again part by part."""


class Outage(Exception):
    """An error of the store: every caller of the flush gets it."""


class Recorder:
    """A flush that doubles its items, records what each flush got and can be held open."""

    def __init__(self) -> None:
        self.flushes: list[tuple[str, list[int]]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def run(self, key: str, items: Sequence[int]) -> list[int]:
        self.flushes.append((key, list(items)))
        await self.gate.wait()
        if any(item < 0 for item in items):
            raise Culprit(f"negative item in {list(items)}")
        if any(item == 13 for item in items):
            raise Outage("the store is down")
        return [item * 2 for item in items]


def group(recorder: Recorder, max_items: int = 100, by_identity: bool = False) -> GroupCommit[str, int, int]:
    return GroupCommit(
        recorder.run, max_items=max_items, retry_alone=lambda error: isinstance(error, Culprit),
        identity=(lambda item: abs(item)) if by_identity else None,
    )


async def held_open(recorder: Recorder, commit: GroupCommit[str, int, int], first: list[int]) -> "asyncio.Task[list[int]]":
    """A first part whose flush is running (and waits on the gate), so later parts queue."""
    recorder.gate.clear()
    task = asyncio.create_task(commit.submit("k", first))
    while not recorder.flushes:
        await asyncio.sleep(0)
    return task


async def test_a_lone_part_is_flushed_at_once_with_nothing_else() -> None:
    recorder = Recorder()
    assert await group(recorder).submit("k", [1, 2]) == [2, 4]
    assert recorder.flushes == [("k", [1, 2])]


async def test_parts_arriving_during_a_flush_share_the_next_one_and_get_their_own_results() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    later = [asyncio.create_task(commit.submit("k", [n, n + 100])) for n in (2, 3, 4)]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == [2]
    assert [await task for task in later] == [[4, 204], [6, 206], [8, 208]]
    assert recorder.flushes == [("k", [1]), ("k", [2, 102, 3, 103, 4, 104])]


async def test_a_flush_holds_at_most_max_items_and_the_rest_wait_in_order() -> None:
    recorder = Recorder()
    commit = group(recorder, max_items=4)
    first = await held_open(recorder, commit, [1])
    later = [asyncio.create_task(commit.submit("k", items)) for items in ([2, 3], [4, 5, 6], [7], [8, 9, 10, 11, 12])]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(first, *later)
    # [4, 5, 6] does not fit after [2, 3]; [7] does; the part larger than a flush goes alone.
    assert [items for _, items in recorder.flushes] == [[1], [2, 3, 7], [4, 5, 6], [8, 9, 10, 11, 12]]


async def test_parts_naming_the_same_thing_never_share_a_flush() -> None:
    recorder = Recorder()
    commit = group(recorder, by_identity=True)
    first = await held_open(recorder, commit, [1])
    later = [asyncio.create_task(commit.submit("k", items)) for items in ([2], [3, 2], [4])]
    await asyncio.sleep(0)
    recorder.gate.set()
    await asyncio.gather(first, *later)
    assert [items for _, items in recorder.flushes] == [[1], [2, 4], [3, 2]]


async def test_an_error_of_one_part_reaches_that_part_alone() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    good, bad, other = (asyncio.create_task(commit.submit("k", items)) for items in ([2], [-3], [4]))
    await asyncio.sleep(0)
    recorder.gate.set()
    await first
    assert await good == [4]
    assert await other == [8]
    with pytest.raises(Culprit):
        await bad
    assert [items for _, items in recorder.flushes] == [[1], [2, -3, 4], [2], [-3], [4]]


async def test_an_error_of_the_store_reaches_every_part_of_the_flush() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    parts = [asyncio.create_task(commit.submit("k", items)) for items in ([2], [13])]
    await asyncio.sleep(0)
    recorder.gate.set()
    await first
    for part in parts:
        with pytest.raises(Outage):
            await part
    assert len(recorder.flushes) == 2  # not retried part by part


async def test_a_caller_that_goes_away_does_not_cut_short_the_flush_it_shares() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    first.cancel()
    recorder.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert recorder.flushes == [("k", [1])]
    assert await commit.submit("k", [5]) == [10]  # the key is free again


async def test_a_part_whose_caller_left_before_its_flush_is_still_run() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    gone, kept = asyncio.create_task(commit.submit("k", [2])), asyncio.create_task(commit.submit("k", [3]))
    await asyncio.sleep(0)
    gone.cancel()
    recorder.gate.set()
    await first
    assert await kept == [6]
    assert [items for _, items in recorder.flushes] == [[1], [2, 3]]


async def test_keys_flush_side_by_side() -> None:
    recorder = Recorder()
    commit = group(recorder)
    first = await held_open(recorder, commit, [1])
    other_key = asyncio.create_task(commit.submit("other", [7]))
    while len(recorder.flushes) < 2:  # flushed while "k" is still held open
        await asyncio.sleep(0)
    recorder.gate.set()
    assert await other_key == [14]
    assert await first == [2]


async def test_parts_that_fill_a_flush_start_another_beside_the_running_one() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder.run, max_items=2, retry_alone=lambda _: False, max_flushes=2)
    first = await held_open(recorder, commit, [1])
    small = asyncio.create_task(commit.submit("k", [2]))
    await asyncio.sleep(0)
    assert len(recorder.flushes) == 1  # one item waits for the running flush
    full = asyncio.create_task(commit.submit("k", [3]))
    while len(recorder.flushes) < 2:  # two waiting items fill a flush: it goes at once
        await asyncio.sleep(0)
    beyond = [asyncio.create_task(commit.submit("k", [n, n])) for n in (4, 5)]
    await asyncio.sleep(0)
    assert len(recorder.flushes) == 2  # at most max_flushes side by side
    recorder.gate.set()
    assert await asyncio.gather(first, small, full, *beyond) == [[2], [4], [6], [8, 8], [10, 10]]
    assert sorted(items for _, items in recorder.flushes) == [[1], [2, 3], [4, 4], [5, 5]]
