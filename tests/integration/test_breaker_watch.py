"""WatchTransitions over a real channel: snapshot, replay, reset, heartbeats, filter, overflow."""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import redis.asyncio
from breaker.v1 import breaker_pb2 as pb

from breaker_svc.app import BreakerApp
from breaker_svc.domain import BreakerState, force_close, force_open, new_breaker
from tests.support.breaker import FAST_CONFIG, StreamReader, fail, make_store, running_app, watch
from tests.support.polling import eventually
from tests.support.redis_server import OwnRedis

S = pb.BreakerState
QUIET_CONFIG = dataclasses.replace(FAST_CONFIG, open_wait_s=60.0)  # no timer transitions mid-test
STORES = ["memory", pytest.param("redis", marks=pytest.mark.redis)]


@pytest.fixture(params=STORES)
async def service(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> AsyncIterator[tuple[BreakerApp, object]]:
    store = make_store(request.param, redis_url, redis_prefix, retention=10)
    async with running_app(store, default_config=QUIET_CONFIG, heartbeat_s=0.1) as running:
        yield running


async def flip(app: BreakerApp, dependency: str, times: int) -> int:
    """Alternates force open / force close; returns the last revision."""
    revision = 0
    for _ in range(times):
        current = await app.store.get(dependency)
        opened = current is not None and current.state is BreakerState.FORCED_OPEN
        force = app.use_cases.force_close if opened else app.use_cases.force_open
        revision = (await force(dependency, "test")).event.revision
    return revision


async def test_without_a_revision_a_snapshot_comes_first_then_live_transitions(service) -> None:
    app, stub = service
    await fail(stub, "openai", 4)
    stream = watch(stub)

    snapshot = await stream.next_of("snapshot")
    assert (snapshot.revision, snapshot.reset) == (1, False)
    assert [(b.dependency, b.state, b.revision) for b in snapshot.breakers] == [("openai", S.BREAKER_STATE_OPEN, 1)]
    assert snapshot.breakers[0].config.half_open_permitted_calls == 2

    await stub.ForceOpen(pb.ForceOpenRequest(dependency="apollo", reason="maintenance"))
    transition = await stream.next_of("transition")
    assert (transition.revision, transition.dependency, transition.to_state) == (2, "apollo", S.BREAKER_STATE_FORCED_OPEN)
    assert transition.reason == "maintenance"
    stream.cancel()


async def test_from_a_retained_revision_every_later_event_is_replayed_in_order_then_live(service) -> None:
    app, stub = service
    await flip(app, "apollo", 5)
    stream = watch(stub, from_revision=2)

    replayed = await stream.transitions(3)
    assert [t.revision for t in replayed] == [3, 4, 5]
    await flip(app, "openai", 1)
    assert (await stream.next_of("transition")).revision == 6
    assert all(m.WhichOneof("event") != "snapshot" for m in stream.received)
    stream.cancel()


async def test_from_the_current_revision_only_live_transitions_follow(service) -> None:
    app, stub = service
    await flip(app, "apollo", 3)
    stream = watch(stub, from_revision=3)

    assert (await stream.next_of("heartbeat")).revision == 3
    await flip(app, "openai", 1)
    assert (await stream.next_of("transition")).revision == 4
    assert all(m.WhichOneof("event") != "snapshot" for m in stream.received)
    stream.cancel()


async def test_a_revision_newer_than_the_log_gets_a_reset_snapshot(service) -> None:
    app, stub = service
    await flip(app, "apollo", 3)
    stream = watch(stub, from_revision=99)

    message = await stream.next()
    assert message.WhichOneof("event") == "snapshot"
    assert (message.snapshot.revision, message.snapshot.reset) == (3, True)
    assert [b.dependency for b in message.snapshot.breakers] == ["apollo"]
    stream.cancel()


async def test_a_revision_no_longer_retained_gets_a_reset_snapshot(service) -> None:
    app, stub = service
    last = await flip(app, "apollo", 150)  # retention is 10 (Redis trims in whole nodes of 100)
    stream = watch(stub, from_revision=1)

    message = await stream.next()
    assert message.WhichOneof("event") == "snapshot"
    assert (message.snapshot.revision, message.snapshot.reset) == (last, True)
    stream.cancel()


async def test_heartbeats_carry_the_current_revision_even_for_filtered_subscribers(service) -> None:
    app, stub = service
    await flip(app, "apollo", 2)
    stream = watch(stub, dependencies=("openai",))

    snapshot = await stream.next_of("snapshot")
    assert snapshot.revision == 2 and len(snapshot.breakers) == 0
    assert (await stream.next_of("heartbeat")).revision == 2
    await flip(app, "apollo", 1)

    async def heartbeat_at_3() -> bool:
        return (await stream.next_of("heartbeat")).revision == 3

    await eventually(heartbeat_at_3)
    assert all(m.WhichOneof("event") != "transition" for m in stream.received)
    stream.cancel()


async def test_a_dependency_filter_limits_the_snapshot_and_the_transitions(service) -> None:
    app, stub = service
    await flip(app, "apollo", 1)
    await flip(app, "openai", 1)
    stream = watch(stub, dependencies=("openai", "perplexity"))

    snapshot = await stream.next_of("snapshot")
    assert [b.dependency for b in snapshot.breakers] == ["openai"]
    await flip(app, "apollo", 1)
    await flip(app, "perplexity", 1)
    transition = await stream.next_of("transition")
    assert (transition.dependency, transition.revision) == ("perplexity", 4)
    stream.cancel()

    replay = watch(stub, from_revision=0, dependencies=("apollo",))
    assert [t.revision for t in await replay.transitions(2)] == [1, 3]
    replay.cancel()


async def test_a_subscriber_that_reconnects_with_its_last_revision_misses_nothing(service) -> None:
    app, stub = service
    stream = watch(stub)
    await stream.next_of("snapshot")
    await flip(app, "apollo", 3)
    last = (await stream.transitions(3))[-1].revision
    stream.cancel()

    await flip(app, "openai", 4)
    await flip(app, "apollo", 1)
    resumed = watch(stub, from_revision=last)
    await flip(app, "instantly", 2)

    revisions = [t.revision for t in await resumed.transitions(7)]
    assert revisions == list(range(last + 1, last + 8))
    assert (await resumed.next_of("heartbeat")).revision == last + 7  # and nothing more came
    assert [m.WhichOneof("event") for m in resumed.received].count("transition") == 7
    resumed.cancel()


@pytest.mark.parametrize("value", [{"from_revision": -1}, {"dependencies": ["Bad Name"]}, {"dependencies": [""]}])
async def test_bad_watch_requests_are_invalid_argument(service, value: dict) -> None:
    _, stub = service
    stream = stub.WatchTransitions(pb.WatchTransitionsRequest(**value))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("store_kind", STORES)
async def test_a_burst_never_ends_a_subscriber_that_keeps_reading(store_kind: str, redis_url: str, redis_prefix: str) -> None:
    async with running_app(make_store(store_kind, redis_url, redis_prefix), default_config=QUIET_CONFIG, watch_buffer=50) as (_, stub):
        stream = watch(stub)
        await stream.next_of("snapshot")
        reading = asyncio.create_task(stream.transitions(480, timeout_s=60))

        async def writer(dependency: str) -> None:  # 8 callers over gRPC: far more than the buffer
            for i in range(60):
                force = stub.ForceOpen if i % 2 == 0 else stub.ForceClose
                await force(pb.ForceOpenRequest(dependency=dependency) if i % 2 == 0 else pb.ForceCloseRequest(dependency=dependency))

        await asyncio.gather(*(writer(f"dep-{n}") for n in range(8)))
        assert [t.revision for t in await reading] == list(range(1, 481))
        stream.cancel()


async def test_shutdown_ends_the_streams_cleanly() -> None:
    from breaker_svc.store.memory import MemoryStore

    async with running_app(MemoryStore()) as (app, stub):
        stream = watch(stub)
        await stream.next_of("snapshot")
        await app.host.stop()

        with pytest.raises(EOFError):
            while True:
                await stream.next()
        assert await stream.call.code() == grpc.StatusCode.OK


@pytest.mark.redis
async def test_a_lost_redis_log_sends_live_subscribers_a_reset_snapshot(redis_url: str, redis_prefix: str) -> None:
    store = make_store("redis", redis_url, redis_prefix)
    async with running_app(store, default_config=QUIET_CONFIG, heartbeat_s=0.1) as (app, stub):
        stream = watch(stub)
        await stream.next_of("snapshot")
        await flip(app, "apollo", 3)
        await stream.transitions(3)
        client = redis.asyncio.from_url(redis_url)
        await client.delete(*[key async for key in client.scan_iter(match=f"{redis_prefix}*")])  # flushed
        await client.aclose()
        await flip(app, "openai", 1)

        snapshot = await stream.next_of("snapshot")
        assert snapshot.reset
        assert snapshot.revision in (0, 1)  # before or after openai's new first event
        if snapshot.revision == 0:
            assert (await stream.next_of("transition")).revision == 1
        else:
            assert [b.dependency for b in snapshot.breakers] == ["openai"]
        stream.cancel()


# --- epochs: revisions count within one incarnation of the log ------------------------------


def watch_from(stub, from_revision: int, epoch: str, dependencies: tuple[str, ...] = ()) -> StreamReader:
    """A resume with the position a subscriber applied: a revision and the epoch it counts in."""
    request = pb.WatchTransitionsRequest(from_revision=from_revision, epoch=epoch, dependencies=list(dependencies))
    return StreamReader(stub.WatchTransitions(request))


def toggle(dependency: str):
    """A store mutation: force open, or force close when forced open."""

    def fn(b, now):
        b = b or new_breaker(dependency, QUIET_CONFIG, now)
        force = force_close if b.state is BreakerState.FORCED_OPEN else force_open
        return *force(b, "test", now), None

    return fn


async def delete_keys(redis_url: str, pattern: str) -> None:
    client = redis.asyncio.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=pattern)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_snapshots_and_heartbeats_carry_the_epoch_of_the_log(service) -> None:
    app, stub = service
    await flip(app, "apollo", 2)
    stream = watch(stub)

    snapshot = await stream.next_of("snapshot")
    assert snapshot.epoch and snapshot.epoch == await app.store.epoch()
    heartbeat = await stream.next_of("heartbeat")
    assert (heartbeat.revision, heartbeat.epoch) == (2, snapshot.epoch)
    stream.cancel()


async def test_from_a_revision_of_the_current_epoch_the_log_is_replayed(service) -> None:
    app, stub = service
    await flip(app, "apollo", 5)
    epoch = await app.store.epoch()
    stream = watch_from(stub, 2, epoch)

    assert [t.revision for t in await stream.transitions(3)] == [3, 4, 5]
    assert (await stream.next_of("heartbeat")).epoch == epoch
    assert all(m.WhichOneof("event") != "snapshot" for m in stream.received)
    stream.cancel()


async def test_a_revision_of_another_epoch_gets_a_reset_snapshot_even_when_that_revision_is_retained(service) -> None:
    app, stub = service
    await flip(app, "apollo", 5)
    stream = watch_from(stub, 2, "0123456789abcdef0123456789abcdef")

    message = await stream.next()
    assert message.WhichOneof("event") == "snapshot"
    snapshot = message.snapshot
    assert (snapshot.revision, snapshot.reset, snapshot.epoch) == (5, True, await app.store.epoch())
    assert [b.dependency for b in snapshot.breakers] == ["apollo"]
    await flip(app, "openai", 1)
    assert (await stream.next_of("transition")).revision == 6
    stream.cancel()


async def test_an_epoch_longer_than_64_characters_is_invalid_argument(service) -> None:
    _, stub = service
    stream = watch_from(stub, 0, "x" * 65)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stream.call.read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("kind", STORES)
async def test_a_subscriber_resuming_after_the_log_was_lost_gets_a_reset_snapshot_not_the_new_log_after_its_revision(
    kind: str, redis_url: str, redis_prefix: str
) -> None:
    # First life: the subscriber applies revisions 1..4.
    async with running_app(make_store(kind, redis_url, redis_prefix), default_config=QUIET_CONFIG) as (app, stub):
        await flip(app, "openai", 4)
        stream = watch(stub)
        snapshot = await stream.next_of("snapshot")
        old_epoch, applied = snapshot.epoch, snapshot.revision
        stream.cancel()
    assert applied == 4
    if kind == "redis":
        await delete_keys(redis_url, f"{redis_prefix}*")  # flushed
    # Second life (memory: a restarted process; Redis: flushed): the log counts from 0 again and
    # passes the subscriber's revision, with a ForceOpen before it.
    async with running_app(make_store(kind, redis_url, redis_prefix), default_config=QUIET_CONFIG) as (app, stub):
        assert (await app.use_cases.force_open("apollo", "incident")).event.revision == 1
        assert await flip(app, "openai", 4) == 5
        new_epoch = await app.store.epoch()
        assert new_epoch != old_epoch

        resumed = watch_from(stub, applied, old_epoch)
        message = await resumed.next()
        assert message.WhichOneof("event") == "snapshot"
        snapshot = message.snapshot
        assert (snapshot.revision, snapshot.reset, snapshot.epoch) == (5, True, new_epoch)
        assert {b.dependency: b.state for b in snapshot.breakers}["apollo"] == S.BREAKER_STATE_FORCED_OPEN
        resumed.cancel()

        # Without an epoch (as before epochs, e.g. from grpcurl) the revision is taken to be the
        # current log's: a replay, as it always was.
        legacy = watch(stub, from_revision=applied)
        assert [t.revision for t in await legacy.transitions(1)] == [5]
        assert all(m.WhichOneof("event") != "snapshot" for m in legacy.received)
        legacy.cancel()


@pytest.mark.redis
async def test_a_lost_redis_log_moves_live_subscribers_to_the_new_epoch(redis_url: str, redis_prefix: str) -> None:
    store = make_store("redis", redis_url, redis_prefix)
    async with running_app(store, default_config=QUIET_CONFIG, heartbeat_s=0.1) as (app, stub):
        stream = watch(stub)
        old_epoch = (await stream.next_of("snapshot")).epoch
        await flip(app, "apollo", 3)
        await stream.transitions(3)
        await delete_keys(redis_url, f"{redis_prefix}*")  # flushed
        await app.use_cases.force_open("openai", "incident")
        await flip(app, "instantly", 4)  # the new log passes revision 3

        snapshot = await stream.next_of("snapshot")
        assert snapshot.reset and snapshot.epoch != old_epoch
        assert snapshot.epoch == await app.store.epoch()

        async def heartbeat_of_the_new_log_at_5() -> bool:
            heartbeat = await stream.next_of("heartbeat")
            return (heartbeat.epoch, heartbeat.revision) == (snapshot.epoch, 5)

        await eventually(heartbeat_of_the_new_log_at_5)
        transitions = [m.transition for m in stream.received if m.WhichOneof("event") == "transition"]
        assert [t.revision for t in transitions] == [1, 2, 3] + [r for r in range(1, 6) if r > snapshot.revision]
        stream.cancel()


@pytest.mark.redis
async def test_redis_replicas_share_one_epoch_and_a_log_that_lost_it_gets_a_new_one(redis_url: str, redis_prefix: str) -> None:
    replicas = [make_store("redis", redis_url, redis_prefix) for _ in range(2)]
    try:
        await replicas[0].mutate("openai", toggle("openai"))
        epoch = await replicas[0].epoch()
        assert await replicas[1].epoch() == epoch
        assert (await replicas[1].snapshot(None)).epoch == epoch
        assert [e.revision for e in await replicas[1].events_after(0, 10, epoch)] == [1]

        await delete_keys(redis_url, f"{redis_prefix}epoch")  # only the epoch is lost
        # No event is appended to a log without an epoch: the commit gives it a new one first.
        mutation = await replicas[1].mutate("openai", toggle("openai"))
        assert mutation.event is not None and mutation.event.revision == 2
        new_epoch = await replicas[0].epoch()
        assert new_epoch != epoch
        assert await replicas[0].events_after(1, 10, epoch) is None
        assert await replicas[0].tail(1, 0.05, 10, epoch) is None
        assert [e.revision for e in await replicas[0].events_after(1, 10, new_epoch)] == [2]
        assert [e.revision for e in await replicas[0].events_after(1, 10)] == [2]  # no epoch: the current log
    finally:
        for replica in replicas:
            await replica.close()


async def test_each_memory_store_is_a_new_epoch() -> None:
    from breaker_svc.store.memory import MemoryStore

    first, second = MemoryStore(), MemoryStore()
    await first.mutate("openai", toggle("openai"))
    epoch = await first.epoch()
    assert epoch != await second.epoch()
    assert (await first.snapshot(None)).epoch == epoch
    assert [e.revision for e in await first.events_after(0, 10, epoch)] == [1]
    assert await first.events_after(0, 10, await second.epoch()) is None
    assert await first.tail(1, 0.05, 10, await second.epoch()) is None


# --- a Redis restarted from an older save ---------------------------------------------------


async def retrying(step: Callable[[], Awaitable[object]]) -> object:
    """Runs `step` until Redis answers it (the app's connections died with the server)."""
    for _ in range(50):
        try:
            return await step()
        except (redis.ConnectionError, TimeoutError, grpc.aio.AioRpcError):
            await asyncio.sleep(0.1)
    return await step()


def states_of(stream: StreamReader, since: int = 0) -> dict[str, int]:
    """What a subscriber that applied the stream's messages (from message `since` on) knows."""
    states: dict[str, int] = {}
    for message in stream.received[since:]:
        kind = message.WhichOneof("event")
        if kind == "snapshot":
            states = {b.dependency: b.state for b in message.snapshot.breakers}
        elif kind == "transition":
            states[message.transition.dependency] = message.transition.to_state
    return states


@pytest.mark.redis
async def test_a_redis_restarted_from_an_older_save_moves_every_subscriber_to_a_new_epoch(own_redis: OwnRedis) -> None:
    store = make_store("redis", own_redis.url, "breaker:")
    async with running_app(store, default_config=QUIET_CONFIG, heartbeat_s=0.1) as (app, stub):
        live = watch(stub)
        epoch = (await live.next_of("snapshot")).epoch
        await app.use_cases.force_open("openai", "incident")  # 1
        client = redis.asyncio.from_url(own_redis.url)
        await client.save()  # the last save before the crash: openai FORCED_OPEN at revision 1
        await client.aclose()
        await app.use_cases.force_close("openai", "over")  # 2
        await app.use_cases.force_open("apollo", "incident")  # 3
        await flip(app, "instantly", 2)  # 4, 5
        await live.transitions(5)
        # A subscriber applied 1..5 of `epoch`: openai FORCED_CLOSED, apollo FORCED_OPEN.
        assert states_of(live)["openai"] == S.BREAKER_STATE_FORCED_CLOSED

        own_redis.crash()
        await own_redis.start()  # from the save: revision 1, openai FORCED_OPEN, no apollo
        for _ in range(5):  # the log passes revision 5 again: 2..6
            await retrying(lambda: flip(app, "perplexity", 1))
        truth = {"openai": S.BREAKER_STATE_FORCED_OPEN, "perplexity": S.BREAKER_STATE_FORCED_OPEN}

        # Resuming from the applied position: a reset snapshot of the log as it is, not a replay of 6.
        async def resume() -> pb.WatchTransitionsResponse:
            resumed = watch_from(stub, 5, epoch)
            try:
                return await resumed.next()
            finally:
                resumed.cancel()

        message = await retrying(resume)  # UNAVAILABLE while the app's pool still holds dead connections
        assert message.WhichOneof("event") == "snapshot"
        snapshot = message.snapshot
        assert snapshot.reset and snapshot.epoch != epoch
        assert {b.dependency: b.state for b in snapshot.breakers} == truth

        # The live stream: a reset to the new epoch, and then the same states.
        reset = await live.next_of("snapshot")
        assert reset.reset and reset.epoch not in ("", epoch)
        since = next(i for i, m in enumerate(live.received) if m.WhichOneof("event") == "snapshot" and m.snapshot.reset)

        async def live_converged() -> bool:
            await live.next_of("heartbeat")
            return states_of(live, since) == truth

        assert await eventually(live_converged)
        assert await app.store.epoch() == reset.epoch == snapshot.epoch
        live.cancel()


@pytest.mark.redis
async def test_a_restarted_redis_rotates_the_epoch_once_however_many_replicas_notice(own_redis: OwnRedis) -> None:
    replicas = [make_store("redis", own_redis.url, "breaker:") for _ in range(4)]
    try:
        await replicas[0].mutate("openai", toggle("openai"))
        epoch = await replicas[0].epoch()
        assert not await replicas[1].check_incarnation()  # same Redis process: nothing to do
        client = redis.asyncio.from_url(own_redis.url)
        await client.save()
        await client.aclose()
        own_redis.crash()
        await own_redis.start()

        rotated = await asyncio.gather(*(retrying(r.check_incarnation) for r in replicas))
        assert sorted(rotated) == [False, False, False, True]
        epochs = {await r.epoch() for r in replicas}
        assert len(epochs) == 1 and epoch not in epochs
        # A regression reported by several replicas at once rotates once, too.
        (current,) = epochs
        rotated = await asyncio.gather(*(r.rotate_epoch_if_behind(current, 5) for r in replicas))
        assert sorted(rotated) == [False, False, False, True]
        assert await replicas[0].epoch() not in (epoch, current)
        assert not await replicas[0].rotate_epoch_if_behind(await replicas[0].epoch(), 1)  # not behind
    finally:
        for replica in replicas:
            await replica.close()


@pytest.mark.redis
async def test_a_log_that_went_back_within_its_epoch_gets_a_new_one_before_the_hub_moves_on(
    redis_url: str, redis_prefix: str
) -> None:
    """Revisions lost under the same Redis process (keys restored by hand): the hub sees its
    position above the log and rotates the epoch, so live subscribers get a reset, not a gap."""
    store = make_store("redis", redis_url, redis_prefix)
    async with running_app(store, default_config=QUIET_CONFIG, heartbeat_s=0.1) as (app, stub):
        live = watch(stub)
        epoch = (await live.next_of("snapshot")).epoch
        await app.use_cases.force_open("openai", "incident")  # 1
        client = redis.asyncio.from_url(redis_url)
        saved = {k: await client.dump(k) for k in (f"{redis_prefix}revision", f"{redis_prefix}events", f"{redis_prefix}breaker:openai")}
        await app.use_cases.force_close("openai", "over")  # 2
        await app.use_cases.force_open("apollo", "incident")  # 3
        await live.transitions(3)
        await client.delete(f"{redis_prefix}breaker:apollo")
        await client.zrem(f"{redis_prefix}dependencies", "apollo")
        for key, value in saved.items():
            await client.restore(key, 0, value, replace=True)  # back to revision 1
        await client.aclose()

        reset = await live.next_of("snapshot")
        assert reset.reset and reset.epoch != epoch
        assert {b.dependency: b.state for b in reset.breakers} == {"openai": S.BREAKER_STATE_FORCED_OPEN}
        resumed = watch_from(stub, 3, epoch)
        assert (await resumed.next()).snapshot.reset
        resumed.cancel()
        live.cancel()
