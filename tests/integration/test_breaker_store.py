"""One behaviour suite for both breaker stores: in-memory and Redis (a real server)."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from breaker_svc.domain import advance, Breaker, BreakerConfig, BreakerState, Change, force_close, force_open, new_breaker, record_outcome
from breaker_svc.store import BreakerStore
from services.errors import InvalidArgument
from tests.support.breaker import make_store
from tests.support.polling import eventually

CONFIG = BreakerConfig(window_size=100, minimum_calls=4, open_wait_s=0.2, half_open_permitted_calls=2, max_half_open_wait_s=0.2)
STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORES)
async def stores(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[BreakerStore, BreakerStore]]:
    """Two handles on one store: two Redis clients (as two replicas would have), or one memory store."""
    first = make_store(request.param, redis_url, redis_prefix, retention=50)
    second = make_store(request.param, redis_url, redis_prefix, retention=50) if request.param == "redis" else first
    yield first, second
    await first.close()
    if second is not first:
        await second.close()


@pytest.fixture
def store(stores: tuple[BreakerStore, BreakerStore]) -> BreakerStore:
    return stores[0]


def existing(dependency: str):
    def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
        return b or new_breaker(dependency, CONFIG, now), None, None

    return fn


def outcome(dependency: str, success: bool):
    def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
        return *record_outcome(b or new_breaker(dependency, CONFIG, now), success, None, now), None

    return fn


def forced(dependency: str, opened: bool):
    force = force_open if opened else force_close

    def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
        return *force(b or new_breaker(dependency, CONFIG, now), "test", now), None

    return fn


async def flip(store: BreakerStore, dependency: str, times: int) -> None:
    for i in range(times):
        await store.mutate(dependency, forced(dependency, opened=i % 2 == 0))


async def test_a_new_breaker_is_stored_with_revision_zero_and_no_event(store: BreakerStore) -> None:
    mutation = await store.mutate("openai", existing("openai"))

    assert mutation.event is None and mutation.breaker.revision == 0
    assert await store.get("openai") == mutation.breaker
    assert await store.current_revision() == 0
    assert await store.events_after(0, 10) == []


async def test_a_state_change_commits_the_breaker_its_revision_and_its_event_together(store: BreakerStore) -> None:
    mutation = await store.mutate("openai", forced("openai", opened=True))

    assert mutation.event is not None and mutation.event.revision == 1
    assert mutation.event.change.from_state is BreakerState.CLOSED
    assert mutation.event.change.to_state is BreakerState.FORCED_OPEN
    stored = await store.get("openai")
    assert stored is not None and stored.state is BreakerState.FORCED_OPEN and stored.revision == 1
    assert await store.current_revision() == 1
    assert await store.events_after(0, 10) == [mutation.event]


async def test_revisions_increase_by_one_across_all_breakers(store: BreakerStore) -> None:
    for dependency in ("apollo", "openai", "apollo", "instantly"):
        await store.mutate(dependency, forced(dependency, opened=(await store.get(dependency)) is None))

    events = await store.events_after(0, 10)
    assert [e.revision for e in events] == [1, 2, 3, 4]
    assert [e.dependency for e in events] == ["apollo", "openai", "apollo", "instantly"]
    assert [e.revision for e in await store.events_after(2, 10)] == [3, 4]
    assert [e.revision for e in await store.events_after(0, 2)] == [1, 2]


async def test_a_mutation_that_changes_nothing_keeps_the_revision_and_the_log(store: BreakerStore) -> None:
    await store.mutate("openai", forced("openai", opened=True))
    mutation = await store.mutate("openai", forced("openai", opened=True))

    assert mutation.event is None and mutation.breaker.revision == 1
    assert await store.current_revision() == 1
    assert len(await store.events_after(0, 10)) == 1


async def test_a_failing_mutation_commits_nothing(store: BreakerStore) -> None:
    await store.mutate("openai", existing("openai"))
    before = await store.get("openai")

    def refuse(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
        raise InvalidArgument("no")

    with pytest.raises(InvalidArgument):
        await store.mutate("openai", refuse)
    assert await store.get("openai") == before
    assert await store.current_revision() == 0


async def test_mutations_return_the_function_result_and_the_store_time(store: BreakerStore) -> None:
    seen: list[float] = []

    def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, str]:
        seen.append(now)
        return b or new_breaker("openai", CONFIG, now), None, "result"

    mutation = await store.mutate("openai", fn)

    assert mutation.result == "result" and mutation.now == seen[-1]
    assert abs(mutation.now - await store.now()) < 5  # one clock (same host here)


async def test_concurrent_writers_lose_no_update_and_open_the_breaker_exactly_once(
    stores: tuple[BreakerStore, BreakerStore],
) -> None:
    writes = [stores[i % 2].mutate("openai", outcome("openai", success=False)) for i in range(40)]
    await asyncio.gather(*writes)

    breaker = await stores[0].get("openai")
    assert breaker is not None and breaker.consecutive_failures == 40  # every write landed
    events = await stores[0].events_after(0, 100)
    assert [(e.change.from_state, e.change.to_state) for e in events] == [(BreakerState.CLOSED, BreakerState.OPEN)]
    assert breaker.revision == 1


async def test_a_revision_newer_than_the_log_is_not_retained(store: BreakerStore) -> None:
    await flip(store, "openai", 3)

    assert await store.events_after(3, 10) == []
    assert await store.events_after(4, 10) is None
    assert await store.tail(9, 0.05, 10) is None


async def test_events_trimmed_by_retention_are_not_retained(store: BreakerStore) -> None:
    await flip(store, "openai", 300)  # retention is 50 (Redis trims approximately, in whole nodes)

    assert await store.events_after(0, 10) is None
    recent = await store.events_after(290, 100)
    assert [e.revision for e in recent] == list(range(291, 301))


async def test_list_pages_in_dependency_name_order_and_filters_by_state(store: BreakerStore) -> None:
    names = [f"dep-{i:02d}" for i in range(12)]
    for name in reversed(names):
        await store.mutate(name, existing(name))
    for name in names[::3]:
        await store.mutate(name, forced(name, opened=True))

    first = await store.list(None, 5, None)
    second = await store.list(first[-1].dependency, 5, None)
    last = await store.list(second[-1].dependency, 5, None)
    assert [b.dependency for b in first + second + last] == names
    forced_open = await store.list(None, 100, BreakerState.FORCED_OPEN)
    assert [b.dependency for b in forced_open] == names[::3]
    assert [b.dependency for b in await store.list("dep-03", 2, BreakerState.FORCED_OPEN)] == ["dep-06", "dep-09"]


async def test_a_snapshot_holds_the_breakers_and_the_revision_of_one_instant(store: BreakerStore) -> None:
    await store.mutate("apollo", forced("apollo", opened=True))
    await store.mutate("openai", existing("openai"))

    everything = await store.snapshot(None)
    named = await store.snapshot(frozenset({"openai", "never-seen"}))

    assert everything.revision == 1
    assert [(b.dependency, b.state, b.revision) for b in everything.breakers] == [
        ("apollo", BreakerState.FORCED_OPEN, 1),
        ("openai", BreakerState.CLOSED, 0),
    ]
    assert [b.dependency for b in named.breakers] == ["openai"] and named.revision == 1


async def test_tail_waits_for_the_next_event(store: BreakerStore) -> None:
    assert await store.tail(0, 0.05, 10) == []

    waiting = asyncio.create_task(store.tail(0, 5.0, 10))
    await asyncio.sleep(0.05)
    mutation = await store.mutate("openai", forced("openai", opened=True))

    assert await asyncio.wait_for(waiting, 5.0) == [mutation.event]


async def test_an_open_breaker_is_due_for_timer_once_its_wait_elapsed(store: BreakerStore) -> None:
    await store.mutate("closed-one", existing("closed-one"))
    for _ in range(4):
        await store.mutate("openai", outcome("openai", success=False))
    opened = await store.get("openai")
    assert opened is not None and opened.state is BreakerState.OPEN

    async def due() -> list[str]:
        return await store.due_for_timer()

    assert await eventually(due) == ["openai"]  # the closed breaker never is
    mutation = await store.mutate("openai", lambda b, now: (*advance(b, now), None))
    assert mutation.event is not None and mutation.event.change.to_state is BreakerState.HALF_OPEN
    assert await store.due_for_timer() == []

    # The half-open trial has a deadline too: undecided past it, the timer reopens the breaker.
    assert await eventually(due) == ["openai"]
    mutation = await store.mutate("openai", lambda b, now: (*advance(b, now), None))
    assert mutation.event is not None and mutation.event.change.to_state is BreakerState.OPEN
