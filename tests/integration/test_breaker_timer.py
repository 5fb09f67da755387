"""The timer keeps moving every due breaker even when one schedule entry is bad (real Redis)."""

import redis.asyncio
from breaker.v1 import breaker_pb2 as pb

from tests.support.breaker import fail, make_store, running_app
from tests.support.polling import eventually


async def test_a_schedule_entry_without_a_breaker_neither_stops_the_timer_nor_stays(redis_url: str, redis_prefix: str) -> None:
    client = redis.asyncio.from_url(redis_url, decode_responses=True)
    try:
        # Oldest first: the entry of a breaker that is gone (evicted, deleted by hand) comes first.
        await client.zadd(f"{redis_prefix}timers", {"ghost": 0})
        async with running_app(make_store("redis", redis_url, redis_prefix)) as (_, stub):
            await fail(stub, "openai", 4)

            async def half_open() -> bool:
                got = await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
                return got.breaker.state == pb.BREAKER_STATE_HALF_OPEN

            await eventually(half_open)
            assert await client.zscore(f"{redis_prefix}timers", "ghost") is None
    finally:
        await client.aclose()
