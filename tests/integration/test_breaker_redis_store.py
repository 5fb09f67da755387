"""What only the Redis store has to get right: the Lua scripts, no TTLs, a lost log."""

import dataclasses
from collections.abc import AsyncIterator

import pytest
import redis.asyncio

from breaker_svc.domain import BreakerConfig, BreakerState, force_close, force_open, new_breaker, record_outcome
from breaker_svc.store.redis_store import RedisStore
from tests.support.polling import eventually

pytestmark = pytest.mark.redis

CONFIG = BreakerConfig(window_size=10, minimum_calls=4, open_wait_s=0.2)


@pytest.fixture
async def store(redis_url: str, redis_prefix: str) -> AsyncIterator[RedisStore]:
    store = RedisStore.from_url(redis_url, prefix=redis_prefix, retention=1000)
    yield store
    await store.close()


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


def flip(dependency: str):
    def fn(b, now):
        b = b or new_breaker(dependency, CONFIG, now)
        force = force_close if b.state is BreakerState.FORCED_OPEN else force_open
        return *force(b, "test", now), None

    return fn


async def keys_of(client: redis.asyncio.Redis, prefix: str) -> list[str]:
    return [key async for key in client.scan_iter(match=f"{prefix}*")]


async def test_the_commit_script_refuses_a_stale_breaker(store: RedisStore, redis_prefix: str, client: redis.asyncio.Redis) -> None:
    await store.mutate("openai", flip("openai"))
    key = f"{redis_prefix}breaker:openai"
    stale = await client.hget(key, "json")
    await store.mutate("openai", flip("openai"))
    current = await client.hget(key, "json")
    opened = dataclasses.replace(new_breaker("openai", CONFIG, 0.0), state=BreakerState.FORCED_OPEN)

    committed, _ = await store._commit(
        keys=[key, f"{redis_prefix}dependencies", f"{redis_prefix}revision", f"{redis_prefix}events", f"{redis_prefix}timers"],
        args=[stale, opened.to_json(), "openai", "", 1000, "forced_open", ""],
    )

    assert committed == 0
    assert await client.hget(key, "json") == current
    assert await store.current_revision() == 2


async def test_nothing_it_writes_expires(store: RedisStore, redis_prefix: str, client: redis.asyncio.Redis) -> None:
    for _ in range(4):
        await store.mutate("openai", lambda b, now: (*record_outcome(b or new_breaker("openai", CONFIG, now), False, None, now), None))
    keys = await keys_of(client, redis_prefix)

    assert {k.removeprefix(redis_prefix) for k in keys} == {
        "breaker:openai", "dependencies", "revision", "events", "timers", "epoch", "run_id"
    }
    assert [await client.ttl(k) for k in keys] == [-1] * len(keys)


async def test_a_lost_log_reads_as_not_retained(store: RedisStore, redis_prefix: str, client: redis.asyncio.Redis) -> None:
    for _ in range(5):
        await store.mutate("openai", flip("openai"))
    await client.delete(*await keys_of(client, redis_prefix))  # Redis flushed under us

    assert await store.events_after(5, 10) is None
    assert await store.tail(5, 0.05, 10) is None
    await store.mutate("openai", flip("openai"))
    assert [e.revision for e in await store.events_after(0, 10)] == [1]


async def test_a_lost_revision_counter_never_reuses_a_stream_id(store: RedisStore, redis_prefix: str, client: redis.asyncio.Redis) -> None:
    for _ in range(3):
        await store.mutate("openai", flip("openai"))
    await client.delete(f"{redis_prefix}revision")

    mutation = await store.mutate("openai", flip("openai"))

    assert mutation.event is not None and mutation.event.revision == 4
    assert [e.revision for e in await store.events_after(0, 10)] == [1, 2, 3, 4]


async def test_time_comes_from_redis(store: RedisStore, client: redis.asyncio.Redis) -> None:
    seconds, microseconds = await client.time()

    async def after_redis_time() -> bool:
        return await store.now() >= seconds + microseconds / 1e6

    assert await eventually(after_redis_time)
