"""The breaker's state machine, one rule per test (semantics anchored on resilience4j)."""

import dataclasses
import json
import math

import pytest

from breaker_svc.domain import (
    Breaker,
    BreakerConfig,
    BreakerState,
    Change,
    CountWindow,
    Metrics,
    Permission,
    TimeWindow,
    WindowType,
    acquire,
    advance,
    configure,
    force_close,
    force_open,
    new_breaker,
    record_outcome,
    reset,
)
from services.errors import InvalidArgument

S = BreakerState
T0 = 1_700_000_000.0
SLOW_S = 2.0


def config(**overrides) -> BreakerConfig:
    base = dict(
        window_size=10,
        minimum_calls=4,
        failure_rate_threshold=50.0,
        slow_call_rate_threshold=50.0,
        slow_call_duration_threshold_s=SLOW_S,
        open_wait_s=10.0,
        half_open_permitted_calls=3,
    )
    return BreakerConfig(**{**base, **overrides})


def breaker(**overrides) -> Breaker:
    return new_breaker("openai", config(**overrides), T0)


def record(b: Breaker, results: str, now: float = T0) -> tuple[Breaker, list[Change]]:
    """Records 'S'uccess, 'F'ailure, 's'low success, 'f' slow failure, in order."""
    changes = []
    for r in results:
        b, change = record_outcome(b, r in "Ss", SLOW_S if r in "sf" else 0.1, now)
        changes += [change] if change else []
    return b, changes


def opened(**overrides) -> Breaker:
    b, _ = record(breaker(**overrides), "FFFF")
    assert b.state is S.OPEN
    return b


def half_open(**overrides) -> Breaker:
    b = opened(**overrides)
    b, _ = advance(b, b.open_until)
    assert b.state is S.HALF_OPEN
    return b


# --- a new breaker -----------------------------------------------------------------------------


def test_a_new_breaker_is_closed_with_an_empty_window_and_no_history():
    b = breaker()
    assert (b.state, b.state_changed_at, b.open_until, b.revision) == (S.CLOSED, T0, None, 0)
    assert b.metrics(T0) == Metrics(0, 0, 0, 0.0, 0.0, 0)
    assert (b.consecutive_openings, b.permits_remaining) == (0, 0)


def test_a_new_breaker_refuses_a_bad_name_and_a_bad_config():
    with pytest.raises(InvalidArgument, match="dependency"):
        new_breaker("Open AI", config(), T0)
    with pytest.raises(InvalidArgument, match="failure_rate_threshold"):
        new_breaker("openai", config(failure_rate_threshold=0), T0)


def test_a_new_breaker_has_a_window_of_the_configured_type():
    assert isinstance(breaker().window, CountWindow)
    assert isinstance(breaker(window_type=WindowType.TIME_BASED).window, TimeWindow)


# --- CLOSED ------------------------------------------------------------------------------------


def test_closed_stays_closed_below_minimum_calls_even_when_every_call_failed():
    b, changes = record(breaker(), "FFF")
    assert b.state is S.CLOSED and changes == []


def test_closed_opens_when_the_failure_rate_reaches_the_threshold_at_minimum_calls():
    b, changes = record(breaker(), "SSFF")
    assert b.state is S.OPEN
    assert [c.reason for c in changes] == ["failure rate 50.0% >= 50.0% over 4 calls"]


def test_closed_stays_closed_while_the_failure_rate_is_below_the_threshold():
    b, changes = record(breaker(), "SSSFSSF")
    assert b.state is S.CLOSED and b.metrics(T0).failure_rate == pytest.approx(100 * 2 / 7)


def test_closed_opens_when_the_slow_call_rate_reaches_the_threshold():
    b, changes = record(breaker(), "Ssss")
    assert b.state is S.OPEN
    assert changes[0].reason == "slow call rate 75.0% >= 50.0% over 4 calls"


def test_a_call_is_slow_when_its_duration_reaches_the_threshold_and_not_when_unknown():
    b = breaker()
    for duration in (SLOW_S, SLOW_S * 10, SLOW_S - 0.001, None):
        b, _ = record_outcome(b, True, duration, T0)
    assert b.metrics(T0).slow_calls == 2


def test_consecutive_failures_open_the_breaker_even_below_minimum_calls():
    b, changes = record(breaker(consecutive_failure_threshold=2, minimum_calls=10), "SFF")
    assert b.state is S.OPEN and changes[0].reason == "2 consecutive failures >= 2"


def test_a_success_ends_the_failure_streak():
    b, _ = record(breaker(consecutive_failure_threshold=3, minimum_calls=10), "FFSFF")
    assert b.state is S.CLOSED and b.consecutive_failures == 2


def test_a_consecutive_failure_threshold_of_zero_never_opens_on_a_streak():
    b, _ = record(breaker(minimum_calls=10), "FFFFFFFFF")
    assert b.state is S.CLOSED and b.consecutive_failures == 9


def test_the_count_window_judges_only_the_last_window_size_calls():
    b, _ = record(breaker(window_size=4, minimum_calls=4, failure_rate_threshold=75), "FFSSSS")
    assert b.metrics(T0).failed_calls == 0
    b, changes = record(b, "FFF")
    assert changes[0].metrics == Metrics(4, 3, 0, 75.0, 0.0, 3)


def test_the_time_window_forgets_calls_older_than_window_size_seconds():
    b = breaker(window_type=WindowType.TIME_BASED, window_size=5, minimum_calls=4)
    b, _ = record(b, "FFF", T0)
    b, changes = record(b, "F", T0 + 5)  # the first three left the window
    assert b.state is S.CLOSED and b.metrics(T0 + 5).calls == 1
    b, changes = record(b, "FFF", T0 + 9)
    assert b.state is S.OPEN


def test_record_outcome_refuses_a_negative_or_not_finite_duration():
    for duration in (-0.1, math.nan, math.inf):
        with pytest.raises(InvalidArgument, match="duration_s"):
            record_outcome(breaker(), True, duration, T0)


def test_record_outcome_leaves_the_breaker_it_was_given_unchanged():
    b = breaker()
    after, _ = record(b, "FFFF")
    assert b.state is S.CLOSED and b.metrics(T0).calls == 0 and after is not b


def test_the_opening_change_carries_the_figures_and_time_of_the_trip():
    b, _ = record(breaker(), "SSF")
    b, change = record_outcome(b, False, None, T0 + 3)
    assert change == Change("openai", S.CLOSED, S.OPEN, b.reason, Metrics(4, 2, 0, 50.0, 0.0, 2), T0 + 3, 3)
    assert b.state_changed_at == T0 + 3


# --- OPEN --------------------------------------------------------------------------------------


def test_opening_holds_the_breaker_open_for_the_open_wait():
    b = opened()
    assert b.open_until == T0 + 10 and b.consecutive_openings == 1


def test_outcomes_recorded_while_open_are_counted_but_never_change_the_state():
    b = opened()
    b, changes = record(b, "SSSSSSSSSS", T0 + 1)
    assert b.state is S.OPEN and changes == [] and b.metrics(T0 + 1).calls == 10


def test_acquire_while_open_is_refused_with_the_time_left_until_open_until():
    b = opened()
    after, permission, change = acquire(b, T0 + 4)
    assert permission == Permission(False, S.OPEN, 6.0)
    assert after is b and change is None


def test_advance_before_open_until_returns_the_same_breaker():
    b = opened()
    assert advance(b, T0 + 9.999) == (b, None)
    assert advance(b, T0 + 9.999)[0] is b


def test_advance_at_open_until_goes_half_open_with_every_permit():
    b = opened()
    after, change = advance(b, T0 + 10)
    assert after.state is S.HALF_OPEN and after.permits_remaining == 3 and after.open_until is None
    assert (change.from_state, change.to_state, change.at) == (S.OPEN, S.HALF_OPEN, T0 + 10)
    assert change.reason == "open wait of 10s elapsed"
    assert change.metrics.calls == 4  # the figures OPEN was showing


def test_acquire_after_open_until_goes_half_open_and_hands_out_the_first_permit():
    b, permission, change = acquire(opened(), T0 + 11)
    assert permission == Permission(True, S.HALF_OPEN, 0.0)
    assert change.to_state is S.HALF_OPEN and b.permits_remaining == 2


def test_a_half_open_trial_undecided_past_its_deadline_reopens_the_breaker():
    b, _ = advance(opened(max_half_open_wait_s=60.0), T0 + 10)
    b, _, _ = acquire(b, T0 + 11)  # a permit handed to a caller that never reports back
    assert b.timer_due_at == T0 + 70
    assert advance(b, T0 + 69.999) == (b, None)
    after, change = advance(b, T0 + 70)
    assert (change.from_state, change.to_state) == (S.HALF_OPEN, S.OPEN)
    assert change.reason == "trial undecided after 60s (0 of 3 calls)"
    assert after.open_until == T0 + 70 + 10 and after.consecutive_openings == 2


def test_a_zero_half_open_deadline_waits_for_the_trial_indefinitely():
    b, _ = advance(opened(max_half_open_wait_s=0.0), T0 + 10)
    assert b.timer_due_at is None
    assert advance(b, T0 + 1e6) == (b, None)


def test_each_reopening_without_recovery_multiplies_the_wait_up_to_the_cap():
    b = opened(open_wait_multiplier=2.0, max_open_wait_s=35.0)
    waits = [b.open_until - b.state_changed_at]
    for _ in range(3):
        b, _ = advance(b, b.open_until)
        b, _ = record(b, "FFF", b.state_changed_at)
        waits.append(b.open_until - b.state_changed_at)
    assert waits == [10, 20, 35, 35] and b.consecutive_openings == 4


def test_closing_from_half_open_forgets_the_backoff():
    b = opened(open_wait_multiplier=2.0, max_open_wait_s=100.0)
    b, _ = advance(b, b.open_until)
    b, _ = record(b, "SSS", b.state_changed_at)
    assert b.state is S.CLOSED and b.consecutive_openings == 0
    b, _ = record(b, "FFFF", b.state_changed_at)
    assert b.open_until - b.state_changed_at == 10


# --- HALF_OPEN ---------------------------------------------------------------------------------


def test_half_open_hands_out_exactly_the_permitted_number_of_permits():
    b, granted = half_open(), []
    for _ in range(5):
        b, permission, _ = acquire(b, b.state_changed_at)
        granted.append(permission.permitted)
    assert granted == [True, True, True, False, False] and b.permits_remaining == 0


def test_half_open_metrics_are_the_trial_figures():
    b, _ = record(half_open(), "Fs")
    assert b.metrics(T0) == Metrics(2, 1, 1, 50.0, 50.0, 0)


def test_half_open_waits_for_every_trial_outcome_before_deciding():
    b, changes = record(half_open(), "FF")
    assert b.state is S.HALF_OPEN and changes == []


def test_half_open_closes_when_the_trial_rates_stay_below_the_thresholds():
    b, changes = record(half_open(), "SSF")
    assert b.state is S.CLOSED and changes[0].reason == "trial passed: 2 of 3 calls succeeded"
    assert changes[0].metrics == Metrics(3, 1, 0, 100 / 3, 0.0, 1)
    assert (b.metrics(T0).calls, b.consecutive_failures, b.consecutive_openings) == (0, 0, 0)


def test_half_open_reopens_when_the_trial_failure_rate_reaches_the_threshold():
    b, changes = record(half_open(), "SFF")
    assert b.state is S.OPEN and b.consecutive_openings == 2
    assert changes[0].reason == "trial failed: failure rate 66.7% >= 50.0% over 3 calls"


def test_half_open_reopens_when_the_trial_slow_rate_reaches_the_threshold():
    b, changes = record(half_open(), "sSs")
    assert b.state is S.OPEN and changes[0].reason.startswith("trial failed: slow call rate 66.7%")


def test_a_failure_streak_does_not_decide_a_half_open_trial():
    b, _ = record(half_open(consecutive_failure_threshold=1), "SSF")
    assert b.state is S.CLOSED


def test_a_new_half_open_episode_starts_with_an_empty_trial_and_every_permit():
    b, _ = record(half_open(), "FFF")
    b, _ = advance(b, b.open_until)
    assert b.trial.calls == 0 and b.permits_remaining == 3


# --- FORCED_OPEN and FORCED_CLOSED ---------------------------------------------------------------


def test_forced_open_refuses_every_call_with_no_retry_after():
    b, _ = force_open(breaker(), "maintenance", T0)
    assert acquire(b, T0 + 1e6)[1] == Permission(False, S.FORCED_OPEN, 0.0)


def test_forced_closed_permits_every_call_even_when_every_call_fails():
    b, _ = force_close(opened(), "trust me", T0)
    b, changes = record(b, "FFFFFFFFFF")
    assert changes == [] and acquire(b, T0)[1] == Permission(True, S.FORCED_CLOSED, 0.0)
    assert b.metrics(T0).failure_rate == 100.0


@pytest.mark.parametrize("force", [force_open, force_close])
def test_forced_states_record_outcomes_but_never_transition_by_themselves(force):
    b, _ = force(breaker(consecutive_failure_threshold=1), "ops", T0)
    b, changes = record(b, "FFFFsss")
    assert changes == [] and b.metrics(T0).calls == 7
    assert advance(b, T0 + 1e6) == (b, None)


def test_forcing_the_state_it_is_already_in_is_no_change():
    b, _ = force_open(breaker(), "ops", T0)
    assert force_open(b, "again", T0 + 1) == (b, None)
    b, _ = force_close(b, "ops", T0)
    assert force_close(b, "again", T0 + 1) == (b, None)


def test_forcing_records_the_reason_or_a_default_one():
    b, change = force_open(breaker(), "provider maintenance", T0)
    assert b.reason == change.reason == "provider maintenance"
    assert force_close(b, "", T0)[1].reason == "forced closed"
    assert force_open(breaker(), "", T0)[1].reason == "forced open"


def test_forcing_open_from_open_drops_the_open_wait():
    b, change = force_open(opened(), "ops", T0 + 1)
    assert b.open_until is None and change.from_state is S.OPEN


# --- reset -------------------------------------------------------------------------------------


def test_reset_closes_with_an_empty_window_and_no_backoff_history():
    b, change = reset(opened(open_wait_multiplier=2.0), T0 + 1)
    assert (b.state, b.metrics(T0).calls, b.consecutive_openings, b.consecutive_failures) == (S.CLOSED, 0, 0, 0)
    assert (change.from_state, change.to_state, change.reason, change.metrics.calls) == (S.OPEN, S.CLOSED, "reset", 4)


def test_reset_of_a_closed_breaker_empties_the_window_without_a_change():
    b, _ = record(breaker(), "FFS")
    after, change = reset(b, T0 + 1)
    assert change is None and after.state is S.CLOSED and after.metrics(T0).calls == 0
    assert after.state_changed_at == b.state_changed_at


@pytest.mark.parametrize("force", [force_open, force_close])
def test_reset_ends_a_forced_state(force):
    b, _ = force(breaker(), "ops", T0)
    b, change = reset(b, T0 + 1)
    assert b.state is S.CLOSED and change.to_state is S.CLOSED


# --- configure ---------------------------------------------------------------------------------


def test_configure_keeps_the_window_when_its_type_and_size_are_unchanged():
    b, _ = record(breaker(), "FFS")
    b, change = configure(b, config(failure_rate_threshold=90), T0)
    assert change is None and b.metrics(T0).calls == 3 and b.config.failure_rate_threshold == 90


@pytest.mark.parametrize("changed", [{"window_size": 20}, {"window_type": WindowType.TIME_BASED}])
def test_configure_rebuilds_the_window_empty_when_its_type_or_size_changes(changed):
    b, _ = record(breaker(), "FFS")
    b, _ = configure(b, config(**changed), T0)
    assert b.metrics(T0).calls == 0 and (b.window.type, b.window.size) == (b.config.window_type, b.config.window_size)


def test_configure_never_transitions_and_the_next_outcome_is_judged_by_the_new_thresholds():
    b, _ = record(breaker(), "SSFS")  # 1 failure in 4: 25%
    b, change = configure(b, config(failure_rate_threshold=20), T0)
    assert change is None and b.state is S.CLOSED
    b, changes = record(b, "S")
    assert b.state is S.OPEN


def test_configure_with_the_same_config_returns_the_same_breaker():
    b = breaker()
    assert configure(b, config(), T0)[0] is b


def test_configure_refuses_an_invalid_config():
    with pytest.raises(InvalidArgument, match="half_open_permitted_calls"):
        configure(breaker(), config(half_open_permitted_calls=0), T0)


def test_configure_in_half_open_keeps_the_permits_already_handed_out():
    b = half_open()
    b, _, _ = acquire(b, T0)
    b, _ = configure(b, config(half_open_permitted_calls=5), T0)
    assert b.permits_remaining == 4
    b, _ = configure(b, config(half_open_permitted_calls=1), T0)
    assert b.permits_remaining == 0


def test_configure_outside_half_open_leaves_no_permits():
    assert configure(opened(), config(half_open_permitted_calls=5), T0)[0].permits_remaining == 0


# --- serialization -----------------------------------------------------------------------------


def test_breaker_json_is_compact_sorted_and_round_trips():
    b, _ = record(half_open(window_type=WindowType.TIME_BASED, window_size=60), "Sf")
    s = b.to_json()
    assert " " not in s.replace("open wait of 10s elapsed", "")
    assert list(json.loads(s)) == sorted(json.loads(s))
    assert Breaker.from_json(s) == b and Breaker.from_json(s).to_json() == s


def test_equal_breakers_serialize_alike_whatever_number_types_were_passed():
    as_ints = new_breaker("openai", BreakerConfig(failure_rate_threshold=50, open_wait_s=30), 1_700_000_000)
    as_floats = new_breaker("openai", BreakerConfig(failure_rate_threshold=50.0, open_wait_s=30.0), T0)
    assert as_ints == as_floats and as_ints.to_json() == as_floats.to_json()


def test_the_store_stamps_a_revision_with_dataclasses_replace():
    b = dataclasses.replace(opened(), revision=42)
    assert Breaker.from_json(b.to_json()).revision == 42


def test_a_breaker_with_a_full_ten_thousand_call_window_serializes_in_about_ten_kilobytes():
    b = breaker(window_size=10_000, minimum_calls=10_000)
    for i in range(10_000):
        b, _ = record_outcome(b, i % 3 == 0, None, T0)
    assert len(b.to_json()) < 11_000


def test_change_json_round_trips():
    _, changes = record(breaker(), "SSFF")
    s = changes[0].to_json()
    assert Change.from_json(s) == changes[0] and Change.from_json(s).to_json() == s


def test_from_json_refuses_an_unknown_format():
    d = json.loads(breaker().to_json())
    d["format"] = 99
    with pytest.raises(ValueError, match="format"):
        Breaker.from_json(json.dumps(d))


# --- states ------------------------------------------------------------------------------------


def test_only_open_and_forced_open_block_calls():
    assert {s for s in S if s.blocks_calls} == {S.OPEN, S.FORCED_OPEN}


def test_states_are_spelled_in_lowercase_like_everywhere_else():
    assert [s.value for s in S] == ["closed", "open", "half_open", "forced_open", "forced_closed"]
    assert S("half_open") is S.HALF_OPEN and S.OPEN == "open"
