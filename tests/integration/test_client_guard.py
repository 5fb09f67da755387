"""The breaker guard (services.client.BreakerClient) against a real breaker_svc over real gRPC,
on the memory and the Redis store: what it costs in RPCs, what it refuses, what it records."""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

import pytest
from breaker.v1 import breaker_pb2 as pb
from prometheus_client import REGISTRY

from breaker_svc.domain import BreakerConfig
from breaker_svc.store.memory import MemoryStore
from breaker_svc.store.redis_store import RedisStore
from services.breaker_state import BreakerState
from services.client import (
    BreakerClient,
    BreakerOpen,
    BreakerServiceClient,
    BreakerUnavailable,
    OutcomePolicy,
    SyncBreakerClient,
    failed_dependency,
)
from tests.support.breaker import running_app
from tests.support.databases import throwaway_redis_prefix
from tests.support.polling import eventually
from tests.support.processes import free_port

# Trips after 4 calls with half failed; HALF_OPEN 0.3 s later with 2 trial permits; slow from 50 ms.
CONFIG = BreakerConfig(window_size=10, minimum_calls=4, open_wait_s=0.3, half_open_permitted_calls=2, slow_call_duration_threshold_s=0.05)
WIDE = BreakerConfig(window_size=1000, minimum_calls=1000)


def unary_calls() -> float:
    """breaker_svc's unary RPCs handled so far in this process (the servers run in-process)."""
    return sum(
        sample.value
        for family in REGISTRY.collect()
        for sample in family.samples
        if sample.name == "grpc_server_handled_total"
        and sample.labels.get("grpc_service") == "breaker.v1.BreakerService"
        and sample.labels.get("grpc_type") == "UNARY"
    )


@pytest.fixture(params=["memory", "redis"])
async def target(request, redis_url: str) -> AsyncIterator[str]:
    async with AsyncExitStack() as stack:
        if request.param == "memory":
            store = MemoryStore()
        else:
            prefix = await stack.enter_async_context(throwaway_redis_prefix(redis_url, "guard"))
            store = RedisStore.from_url(redis_url, prefix=prefix)
        app, _ = await stack.enter_async_context(running_app(store, default_config=CONFIG, heartbeat_s=0.1))
        yield f"127.0.0.1:{app.port}"


async def metrics(admin: BreakerServiceClient, dependency: str) -> pb.BreakerMetrics:
    return (await admin.get(dependency)).metrics


async def test_a_closed_guard_makes_no_rpc_and_its_outcomes_are_recorded_in_batches(target: str) -> None:
    async with BreakerClient(target, tls=None) as breakers:
        before, outcomes = unary_calls(), counted("openai", 301)
        for _ in range(300):
            async with breakers.guard("openai"):
                pass

        @breakers.guard("openai")
        async def call_openai() -> str:
            return "copy"

        assert await call_openai() == "copy"
        assert unary_calls() == before
        await eventually(outcomes)
        await eventually(lambda: _acknowledged(breakers, 301))
        assert breakers.dropped_outcomes == 0


async def test_outcomes_still_arrive_after_the_stream_was_idle_longer_than_the_ack_timeout(target: str) -> None:
    """An idle outcome stream must stay usable: a read cut short by the acknowledgement timeout
    used to cancel the call and end the sender for good, so no outcome arrived again."""
    async with BreakerClient(target, tls=None, ack_timeout_s=0.2) as breakers:
        first = counted("perplexity", 1)
        async with breakers.guard("perplexity"):
            pass
        await eventually(first)
        await asyncio.sleep(1.0)  # five acknowledgement timeouts with nothing in flight
        later = counted("perplexity", 1)
        async with breakers.guard("perplexity"):
            pass
        await eventually(later)


def recorded(dependency: str) -> float:
    """Outcomes breaker_svc (in-process) has counted for `dependency` so far, in every test."""
    return sum(
        REGISTRY.get_sample_value("breaker_calls_total", {"dependency": dependency, "result": r}) or 0 for r in ("success", "failure")
    )


def counted(dependency: str, count: int) -> Callable[[], Awaitable[bool]]:
    """A check for `eventually`: `count` more outcomes of `dependency` counted than now."""
    start = recorded(dependency)

    async def check() -> bool:
        return recorded(dependency) - start == count

    return check


async def test_open_refuses_at_once_then_half_open_trials_close_it(target: str) -> None:
    async with BreakerClient(target, tls=None) as breakers:
        for _ in range(4):
            with pytest.raises(ConnectionError) as failed:
                async with breakers.guard("apollo"):
                    raise ConnectionError("apollo is down")
            assert failed_dependency(failed.value) == "apollo"
        await eventually(lambda: _state_is(breakers, "apollo", BreakerState.OPEN))

        ran = False
        before = unary_calls()
        with pytest.raises(BreakerOpen) as refused:
            async with breakers.guard("apollo"):
                ran = True
        assert not ran and unary_calls() == before
        assert refused.value.dependency == "apollo" and refused.value.state is BreakerState.OPEN
        assert failed_dependency(refused.value) == "apollo"
        await eventually(lambda: _retry_hint(breakers))

        await eventually(lambda: _state_is(breakers, "apollo", BreakerState.HALF_OPEN))
        before = unary_calls()
        trials = [breakers.guard("apollo") for _ in range(3)]
        await trials[0].__aenter__()
        await trials[1].__aenter__()
        with pytest.raises(BreakerOpen) as no_permit:
            await trials[2].__aenter__()  # both permits are out
        assert no_permit.value.state is BreakerState.HALF_OPEN
        assert unary_calls() - before == 3  # one Acquire per trial, nothing else
        await trials[0].__aexit__(None, None, None)
        await trials[1].__aexit__(None, None, None)
        await eventually(lambda: _state_is(breakers, "apollo", BreakerState.CLOSED))


async def test_a_failed_trial_reopens_the_breaker(target: str) -> None:
    async with BreakerClient(target, tls=None) as breakers:
        for _ in range(4):
            with pytest.raises(TimeoutError):
                async with breakers.guard("perplexity"):
                    raise TimeoutError()
        await eventually(lambda: _state_is(breakers, "perplexity", BreakerState.HALF_OPEN))
        for _ in range(2):
            with pytest.raises(TimeoutError):
                async with breakers.guard("perplexity"):
                    raise TimeoutError()
        await eventually(lambda: _state_is(breakers, "perplexity", BreakerState.OPEN))


async def _state_is(breakers: BreakerClient, dependency: str, state: BreakerState) -> bool:
    return breakers.state(dependency) is state


async def _retry_hint(breakers: BreakerClient) -> bool:
    try:
        async with breakers.guard("apollo"):
            pass
    except BreakerOpen as refused:
        return refused.retry_after_s is not None and 0 <= refused.retry_after_s <= 0.3
    return False


async def test_record_and_ignore_lists_and_slow_calls(target: str) -> None:
    policy = OutcomePolicy(record=(ConnectionError,), ignore=(KeyError,))
    async with BreakerClient(target, tls=None, policy=policy) as breakers, BreakerServiceClient(target, tls=None) as admin:
        outcomes = counted("instantly", 4)  # the KeyError is not recorded
        errors = [ConnectionResetError(), KeyError("no such lead"), ValueError("bad input"), None]
        for error in errors:
            try:
                async with breakers.guard("instantly"):
                    if error is not None:
                        raise error
            except Exception as caught:  # noqa: BLE001 - each is checked below
                assert caught is error
        async with breakers.guard("instantly"):
            await asyncio.sleep(0.06)
        await eventually(outcomes)
        figures = await metrics(admin, "instantly")
        assert (figures.failed_calls, figures.slow_calls) == (1, 1)
        assert failed_dependency(errors[0]) == "instantly"
        assert failed_dependency(errors[1]) is None and failed_dependency(errors[2]) is None


async def test_outcomes_beyond_the_bound_are_dropped_and_counted_never_blocking(target: str) -> None:
    async with BreakerClient(target, tls=None, max_pending_outcomes=10) as breakers:
        outcomes = counted("millionverifier", 10)
        for _ in range(50):  # the loop never yields: nothing can be sent meanwhile
            async with breakers.guard("millionverifier"):
                pass
        assert breakers.dropped_outcomes == 40
        await eventually(outcomes)


@pytest.mark.parametrize("when_stale", ["open", "closed"])
async def test_an_unreachable_breaker_svc_fails_open_or_closed_as_configured(when_stale: str) -> None:
    port = free_port()
    options = dict(tls=None, stale_after_s=0.3, when_stale=when_stale, ready_timeout_s=5.0)
    async with AsyncExitStack() as stack:
        app, stub = await stack.enter_async_context(running_app(MemoryStore(), port=port, default_config=CONFIG, heartbeat_s=0.1))
        breakers = await stack.enter_async_context(BreakerClient(f"127.0.0.1:{port}", **options))
        async with BreakerServiceClient(f"127.0.0.1:{port}", tls=None) as admin:
            await admin.force_open("openai", "incident")
        await eventually(lambda: _state_is(breakers, "openai", BreakerState.FORCED_OPEN))
        async with breakers.guard("apollo"):
            pass
        await app.stop()
        await asyncio.sleep(0.5)
        assert breakers.is_stale()
        if when_stale == "open":
            for dependency in ("openai", "apollo"):
                async with breakers.guard(dependency):
                    pass
        else:
            for dependency, last_known in (("openai", BreakerState.FORCED_OPEN), ("apollo", BreakerState.CLOSED)):
                with pytest.raises(BreakerUnavailable) as refused:
                    async with breakers.guard(dependency):
                        pass
                assert refused.value.state is last_known and failed_dependency(refused.value) == dependency


async def test_outcomes_sent_while_breaker_svc_restarts_are_counted_once(redis_url: str) -> None:
    port = free_port()
    async with throwaway_redis_prefix(redis_url, "guard") as prefix:
        def store() -> RedisStore:
            return RedisStore.from_url(redis_url, prefix=prefix)

        async with BreakerClient(f"127.0.0.1:{port}", tls=None, ready_timeout_s=0.1) as breakers:
            outcomes = counted("openai", 200)
            async with running_app(store(), port=port, default_config=WIDE):
                for _ in range(100):
                    async with breakers.guard("openai"):
                        pass
                await eventually(lambda: _acknowledged(breakers, 100))
            for _ in range(100):  # breaker_svc is down: kept until it is back
                async with breakers.guard("openai"):
                    pass
            async with running_app(store(), port=port, default_config=WIDE), BreakerServiceClient(f"127.0.0.1:{port}", tls=None) as admin:
                await eventually(outcomes)
                await eventually(lambda: _acknowledged(breakers, 200))
                assert (await metrics(admin, "openai")).calls == 200  # in the window of the shared store


async def _acknowledged(breakers: BreakerClient, count: int) -> bool:
    return breakers.recorded_outcomes == count


async def test_the_sync_facade_guards_calls_from_many_threads(target: str) -> None:
    def work() -> tuple[int, int]:
        with SyncBreakerClient(target, tls=None) as breakers:
            guard = breakers.guard("openai")

            @breakers.guard("openai")
            def call_openai(n: int) -> int:
                return n

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(call_openai, range(400)))
            with guard:
                pass
            admin = breakers.client.service
            breakers.submit(admin.force_open("openai", "incident"))
            refused = 0
            for _ in range(200):
                try:
                    with breakers.guard("openai"):
                        pass
                except BreakerOpen:
                    refused += 1
                    break
                time.sleep(0.01)
            return sum(results), refused

    total, refused = await asyncio.to_thread(work)
    assert total == sum(range(400)) and refused == 1
