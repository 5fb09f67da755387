"""Every BreakerService RPC over a real gRPC channel, including bad input and admin checks, on
both stores (in-process memory and Redis), and half-open permits through two replicas."""

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from breaker_svc.store.memory import MemoryStore
from tests.support.breaker import admin, fail, make_store, running_app, succeed
from tests.support.polling import eventually

S = pb.BreakerState
BAD_NAMES = ["", "OpenAI", "open ai", "-openai", "openai.", "a" * 64, "ünicode", "openai\n"]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def stub(request: pytest.FixtureRequest, redis_url: str, redis_prefix: str) -> AsyncIterator[breaker_pb2_grpc.BreakerServiceStub]:
    async with running_app(make_store(request.param, redis_url, redis_prefix)) as (_, stub):
        yield stub


async def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value.code()


# --- RecordOutcome / RecordOutcomes --------------------------------------------------------


async def test_the_first_outcome_creates_the_breaker_with_the_default_configuration(stub) -> None:
    response = await succeed(stub, "openai")

    assert response.breaker.dependency == "openai" and response.breaker.state == S.BREAKER_STATE_CLOSED
    assert response.breaker.config.minimum_calls == 4 and response.breaker.config.half_open_permitted_calls == 2
    assert response.breaker.metrics.calls == 1 and not response.HasField("transition")


async def test_failures_open_the_breaker_and_the_response_carries_the_transition(stub) -> None:
    await succeed(stub, "openai", 2)
    await fail(stub, "openai", 1)
    response = await fail(stub, "openai", 1)

    assert response.breaker.state == S.BREAKER_STATE_OPEN and response.breaker.HasField("open_until_time")
    t = response.transition
    assert (t.revision, t.from_state, t.to_state) == (1, S.BREAKER_STATE_CLOSED, S.BREAKER_STATE_OPEN)
    assert t.metrics.calls == 4 and t.metrics.failure_rate == 50.0 and "failure rate 50.0%" in t.reason
    assert t.half_open_permitted_calls == 2


async def test_a_call_as_long_as_the_threshold_counts_as_slow(stub) -> None:
    request = pb.RecordOutcomeRequest(dependency="openai", result=pb.CALL_RESULT_SUCCESS, duration=Duration(seconds=60))
    response = await stub.RecordOutcome(request)

    assert response.breaker.metrics.slow_calls == 1 and response.breaker.metrics.slow_call_rate == 100.0


@pytest.mark.parametrize("name", BAD_NAMES)
async def test_a_malformed_dependency_name_is_invalid_argument(stub, name: str) -> None:
    request = pb.RecordOutcomeRequest(dependency=name, result=pb.CALL_RESULT_SUCCESS)
    assert await code_of(stub.RecordOutcome(request)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.Acquire(pb.AcquireRequest(dependency=name))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency=name))) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "request_",
    [
        pb.RecordOutcomeRequest(dependency="openai"),  # result unspecified
        pb.RecordOutcomeRequest(dependency="openai", result=7),  # not a CallResult
        pb.RecordOutcomeRequest(dependency="openai", result=pb.CALL_RESULT_FAILURE, duration=Duration(seconds=-1)),
        pb.RecordOutcomeRequest(dependency="openai", result=pb.CALL_RESULT_FAILURE, duration=Duration(seconds=1, nanos=-5)),
    ],
)
async def test_a_bad_outcome_is_invalid_argument_and_records_nothing(stub, request_) -> None:
    assert await code_of(stub.RecordOutcome(request_)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))) == grpc.StatusCode.NOT_FOUND


async def test_a_batch_is_recorded_in_order_and_returns_each_touched_breaker(stub) -> None:
    results = [pb.CALL_RESULT_FAILURE] * 4 + [pb.CALL_RESULT_SUCCESS]
    batch = [pb.RecordOutcomesRequest(dependency="openai", result=r) for r in results]
    batch += [pb.RecordOutcomesRequest(dependency="apollo", result=pb.CALL_RESULT_SUCCESS)]

    response = await stub.RecordOutcomes(iter(batch))

    assert response.recorded_count == 6
    assert [(b.dependency, b.state, b.metrics.calls) for b in response.breakers] == [
        ("apollo", S.BREAKER_STATE_CLOSED, 1),
        ("openai", S.BREAKER_STATE_OPEN, 5),  # the success after the opening is counted, not acted on
    ]
    got = await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
    assert got.breaker.state == S.BREAKER_STATE_OPEN and got.breaker.metrics.consecutive_failures == 0


async def test_a_batch_with_one_bad_outcome_records_none_of_it(stub) -> None:
    batch = [
        pb.RecordOutcomesRequest(dependency="openai", result=pb.CALL_RESULT_FAILURE),
        pb.RecordOutcomesRequest(dependency="Bad", result=pb.CALL_RESULT_FAILURE),
    ]
    assert await code_of(stub.RecordOutcomes(iter(batch))) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))) == grpc.StatusCode.NOT_FOUND


async def test_an_empty_batch_records_nothing(stub) -> None:
    response = await stub.RecordOutcomes(iter([]))
    assert response.recorded_count == 0 and len(response.breakers) == 0


# --- Acquire and the open -> half-open -> closed cycle -------------------------------------


async def test_acquire_permits_in_closed_and_refuses_in_open_with_a_retry_after(stub) -> None:
    assert (await stub.Acquire(pb.AcquireRequest(dependency="openai"))).permitted
    await fail(stub, "openai", 4)

    refused = await stub.Acquire(pb.AcquireRequest(dependency="openai"))

    assert not refused.permitted and refused.state == S.BREAKER_STATE_OPEN
    assert 0 < refused.retry_after.ToTimedelta().total_seconds() <= 0.2


async def test_the_timer_half_opens_with_no_traffic_and_exactly_the_permitted_trials_get_through(stub) -> None:
    await fail(stub, "openai", 4)

    async def half_open() -> bool:
        got = await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
        return got.breaker.state == S.BREAKER_STATE_HALF_OPEN

    await eventually(half_open)
    answers = await asyncio.gather(*(stub.Acquire(pb.AcquireRequest(dependency="openai")) for _ in range(10)))
    assert sum(a.permitted for a in answers) == 2

    response = await succeed(stub, "openai", 2)
    assert response.breaker.state == S.BREAKER_STATE_CLOSED
    assert response.transition.from_state == S.BREAKER_STATE_HALF_OPEN and "trial passed" in response.transition.reason


@pytest.mark.redis
async def test_two_replicas_on_one_redis_hand_out_exactly_the_permitted_trials_between_them(redis_url: str, redis_prefix: str) -> None:
    async with (
        running_app(make_store("redis", redis_url, redis_prefix)) as (_, first),
        running_app(make_store("redis", redis_url, redis_prefix)) as (_, second),
    ):
        await fail(first, "openai", 4)

        async def half_open() -> bool:
            got = await second.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
            return got.breaker.state == S.BREAKER_STATE_HALF_OPEN

        await eventually(half_open)
        acquiring = [stub.Acquire(pb.AcquireRequest(dependency="openai")) for _ in range(15) for stub in (first, second)]
        answers = await asyncio.gather(*acquiring)
        assert sum(a.permitted for a in answers) == 2  # half_open_permitted_calls, not 2 per replica


async def test_a_failed_trial_reopens_the_breaker(stub) -> None:
    await fail(stub, "openai", 4)

    async def half_open() -> bool:
        return (await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))).breaker.state == S.BREAKER_STATE_HALF_OPEN

    await eventually(half_open)
    response = await fail(stub, "openai", 2)

    assert response.transition.to_state == S.BREAKER_STATE_OPEN and response.breaker.consecutive_openings == 2


async def test_a_trial_whose_permits_never_report_back_reopens_at_its_deadline(stub) -> None:
    await stub.ConfigureBreaker(pb.ConfigureBreakerRequest(
        dependency="openai",
        config=pb.BreakerConfig(max_half_open_wait_duration=Duration(nanos=300_000_000)),
        update_mask=FieldMask(paths=["max_half_open_wait_duration"]),
    ))
    await fail(stub, "openai", 4)

    async def state() -> int:
        return (await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))).breaker.state

    await eventually(lambda: _is(state, S.BREAKER_STATE_HALF_OPEN))
    half_open = (await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))).breaker
    assert half_open.HasField("half_open_deadline_time")
    assert all([(await stub.Acquire(pb.AcquireRequest(dependency="openai"))).permitted for _ in range(2)])
    # The two permit holders never report: the timer, not traffic, reopens the breaker.
    await eventually(lambda: _is(state, S.BREAKER_STATE_OPEN))


async def _is(read, expected: int) -> bool:
    return await read() == expected


# --- GetBreaker / ListBreakers --------------------------------------------------------------


async def test_get_breaker_of_a_dependency_never_seen_is_not_found(stub) -> None:
    assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency="perplexity"))) == grpc.StatusCode.NOT_FOUND


async def test_list_breakers_pages_in_name_order_and_filters_by_state(stub) -> None:
    names = ["apollo", "instantly", "millionverifier", "openai", "perplexity"]
    for name in names:
        await succeed(stub, name)
    await fail(stub, "openai", 4)

    seen, token = [], ""
    while True:
        page = await stub.ListBreakers(pb.ListBreakersRequest(page_size=2, page_token=token))
        seen += [b.dependency for b in page.breakers]
        token = page.next_page_token
        if not token:
            break
    opened = await stub.ListBreakers(pb.ListBreakersRequest(state=S.BREAKER_STATE_OPEN))
    everything = await stub.ListBreakers(pb.ListBreakersRequest())

    assert seen == names
    assert [b.dependency for b in opened.breakers] == ["openai"] and not opened.next_page_token
    assert [b.dependency for b in everything.breakers] == names


async def test_list_breakers_refuses_bad_paging_and_filters(stub) -> None:
    await succeed(stub, "apollo")
    await succeed(stub, "openai")
    page = await stub.ListBreakers(pb.ListBreakersRequest(page_size=1))

    for request in [
        pb.ListBreakersRequest(page_size=-1),
        pb.ListBreakersRequest(page_token="not a token"),
        pb.ListBreakersRequest(page_token=page.next_page_token, state=S.BREAKER_STATE_OPEN),  # other filter
        pb.ListBreakersRequest(state=42),
    ]:
        assert await code_of(stub.ListBreakers(request)) == grpc.StatusCode.INVALID_ARGUMENT


# --- ConfigureBreaker -----------------------------------------------------------------------


async def test_configure_applies_the_masked_fields_and_persists_them(stub) -> None:
    config = pb.BreakerConfig(failure_rate_threshold=75.0, minimum_calls=9)
    response = await stub.ConfigureBreaker(
        pb.ConfigureBreakerRequest(dependency="openai", config=config, update_mask=FieldMask(paths=["failure_rate_threshold"]))
    )

    assert response.breaker.config.failure_rate_threshold == 75.0 and response.breaker.config.minimum_calls == 4
    got = await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))
    assert got.breaker.config.failure_rate_threshold == 75.0


async def test_configure_without_a_mask_applies_the_non_zero_fields(stub) -> None:
    config = pb.BreakerConfig(
        sliding_window_type=pb.SLIDING_WINDOW_TYPE_TIME_BASED,
        sliding_window_size=30,
        open_wait_duration=Duration(seconds=5),
        max_open_wait_duration=Duration(seconds=50),
        open_wait_multiplier=2.0,
    )
    response = await stub.ConfigureBreaker(pb.ConfigureBreakerRequest(dependency="openai", config=config))

    c = response.breaker.config
    assert c.sliding_window_type == pb.SLIDING_WINDOW_TYPE_TIME_BASED and c.sliding_window_size == 30
    assert c.open_wait_duration.seconds == 5 and c.max_open_wait_duration.seconds == 50 and c.open_wait_multiplier == 2.0
    assert c.minimum_calls == 4 and c.half_open_permitted_calls == 2  # untouched


@pytest.mark.parametrize(
    "config, paths",
    [
        (pb.BreakerConfig(failure_rate_threshold=150.0), []),
        (pb.BreakerConfig(failure_rate_threshold=-1.0), []),
        (pb.BreakerConfig(sliding_window_size=20_000), []),
        (pb.BreakerConfig(sliding_window_size=0), ["sliding_window_size"]),
        (pb.BreakerConfig(half_open_permitted_calls=0), ["half_open_permitted_calls"]),
        (pb.BreakerConfig(half_open_permitted_calls=5000), []),
        (pb.BreakerConfig(minimum_calls=-3), []),
        (pb.BreakerConfig(open_wait_multiplier=0.5), []),
        (pb.BreakerConfig(open_wait_duration=Duration(seconds=-5)), []),
        (pb.BreakerConfig(max_open_wait_duration=Duration(nanos=100_000_000)), []),  # below open_wait
        (pb.BreakerConfig(sliding_window_type=9), []),
        (pb.BreakerConfig(failure_rate_threshold=60), ["no_such_field"]),
        (pb.BreakerConfig(), []),  # nothing to change
    ],
)
async def test_configure_refuses_out_of_range_values(stub, config: pb.BreakerConfig, paths: list[str]) -> None:
    request = pb.ConfigureBreakerRequest(dependency="openai", config=config, update_mask=FieldMask(paths=paths))
    assert await code_of(stub.ConfigureBreaker(request)) == grpc.StatusCode.INVALID_ARGUMENT
    assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))) == grpc.StatusCode.NOT_FOUND


# --- ForceOpen / ForceClose / ResetBreaker --------------------------------------------------


async def test_force_open_creates_the_breaker_holds_it_open_and_force_close_holds_it_closed(stub) -> None:
    opened = await stub.ForceOpen(pb.ForceOpenRequest(dependency="instantly", reason="provider maintenance"))
    assert opened.breaker.state == S.BREAKER_STATE_FORCED_OPEN and opened.breaker.reason == "provider maintenance"
    assert not (await stub.Acquire(pb.AcquireRequest(dependency="instantly"))).permitted

    closed = await stub.ForceClose(pb.ForceCloseRequest(dependency="instantly"))
    assert closed.breaker.state == S.BREAKER_STATE_FORCED_CLOSED
    await fail(stub, "instantly", 10)
    assert (await stub.Acquire(pb.AcquireRequest(dependency="instantly"))).permitted


async def test_force_with_a_bad_name_or_an_overlong_reason_is_invalid_argument(stub) -> None:
    assert await code_of(stub.ForceOpen(pb.ForceOpenRequest(dependency=""))) == grpc.StatusCode.INVALID_ARGUMENT
    request = pb.ForceCloseRequest(dependency="openai", reason="x" * 1001)
    assert await code_of(stub.ForceClose(request)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_reset_closes_the_breaker_with_an_empty_window(stub) -> None:
    await fail(stub, "openai", 4)

    response = await stub.ResetBreaker(pb.ResetBreakerRequest(dependency="openai"))

    assert response.breaker.state == S.BREAKER_STATE_CLOSED and response.breaker.metrics.calls == 0
    assert response.breaker.revision == 2


async def test_reset_of_a_dependency_never_seen_is_not_found(stub) -> None:
    assert await code_of(stub.ResetBreaker(pb.ResetBreakerRequest(dependency="apollo"))) == grpc.StatusCode.NOT_FOUND
    assert await code_of(stub.ResetBreaker(pb.ResetBreakerRequest(dependency="Apollo"))) == grpc.StatusCode.INVALID_ARGUMENT


# --- the admin token ------------------------------------------------------------------------


async def test_admin_calls_need_the_token_when_one_is_configured() -> None:
    async with running_app(MemoryStore(), admin_token="s3cret") as (_, stub):
        calls = [
            lambda md: stub.ForceOpen(pb.ForceOpenRequest(dependency="openai"), metadata=md),
            lambda md: stub.ForceClose(pb.ForceCloseRequest(dependency="openai"), metadata=md),
            lambda md: stub.ConfigureBreaker(
                pb.ConfigureBreakerRequest(dependency="openai", config=pb.BreakerConfig(minimum_calls=5)), metadata=md
            ),
            lambda md: stub.ResetBreaker(pb.ResetBreakerRequest(dependency="openai"), metadata=md),
        ]
        for call in calls:
            assert await code_of(call(None)) == grpc.StatusCode.UNAUTHENTICATED
            assert await code_of(call(admin("wrong"))) == grpc.StatusCode.UNAUTHENTICATED
            await call(admin("s3cret"))
        assert (await succeed(stub, "openai")).breaker.dependency == "openai"  # not an admin call
