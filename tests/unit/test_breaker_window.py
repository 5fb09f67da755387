"""The sliding windows: examples, then properties against a recount of the full history."""

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from breaker_svc.domain import BreakerConfig, CountWindow, Tally, TimeWindow, WindowType
from breaker_svc.domain.window import new_window, outcome, window_fits, window_from_dict

OK, FAIL = outcome(failed=False, slow=False), outcome(failed=True, slow=False)
SLOW_OK, SLOW_FAIL = outcome(failed=False, slow=True), outcome(failed=True, slow=True)
T0 = 1_700_000_000.0


def record_all(window, outcomes, now=T0):
    for one in outcomes:
        window = window.record(one, now)
    return window


def test_an_outcome_is_a_tally_of_one_call():
    assert SLOW_FAIL == Tally(calls=1, failed_calls=1, slow_calls=1)


def test_rates_are_percentages_and_zero_without_calls():
    assert (Tally().failure_rate, Tally().slow_call_rate) == (0.0, 0.0)
    assert Tally(4, 1, 3).failure_rate == 25.0 and Tally(4, 1, 3).slow_call_rate == 75.0


def test_a_count_window_holds_the_last_size_outcomes_and_their_totals():
    window = record_all(CountWindow(3), [FAIL, FAIL, OK, SLOW_OK])
    assert window.outcomes == "102"
    assert window.tally(T0) == Tally(3, 1, 1)


def test_a_count_window_does_not_change_the_window_it_was_recorded_on():
    empty = CountWindow(3)
    empty.record(FAIL, T0)
    assert empty.tally(T0) == Tally()


def test_a_count_window_ignores_time():
    window = record_all(CountWindow(3), [FAIL, OK])
    assert window.tally(T0 + 1e6) == Tally(2, 1, 0)


def test_a_time_window_aggregates_calls_of_one_second_into_one_bucket():
    window = TimeWindow(10).record(FAIL, T0 + 0.1).record(OK, T0 + 0.9).record(SLOW_OK, T0 + 1.0)
    assert window.buckets == ((int(T0), Tally(2, 1, 0)), (int(T0) + 1, SLOW_OK))


def test_a_time_window_forgets_calls_older_than_size_seconds():
    window = TimeWindow(3).record(FAIL, T0).record(OK, T0 + 1).record(OK, T0 + 2.5)
    assert window.tally(T0 + 2.99) == Tally(3, 1, 0)
    assert window.tally(T0 + 3.0) == Tally(2, 0, 0)  # the second T0 has left the window
    assert window.tally(T0 + 5.0) == Tally(0, 0, 0)


def test_a_time_window_evicts_when_recording():
    window = TimeWindow(2).record(FAIL, T0).record(OK, T0 + 10)
    assert window.buckets == ((int(T0) + 10, OK),)


def test_a_clock_stepping_back_adds_to_the_newest_bucket():
    window = TimeWindow(10).record(OK, T0 + 5).record(FAIL, T0 + 3)
    assert window.buckets == ((int(T0) + 5, Tally(2, 1, 0)),)


def test_new_window_follows_the_config_and_window_fits_compares_type_and_size():
    count = BreakerConfig(window_size=7, minimum_calls=1)
    time = BreakerConfig(window_type=WindowType.TIME_BASED, window_size=7)
    assert new_window(count) == CountWindow(7) and new_window(time) == TimeWindow(7)
    assert window_fits(CountWindow(7), count) and not window_fits(CountWindow(7), time)
    assert not window_fits(CountWindow(8), count)


def test_windows_round_trip_through_their_dicts():
    count = record_all(CountWindow(5), [OK, FAIL, SLOW_OK, SLOW_FAIL])
    time = TimeWindow(60).record(FAIL, T0).record(OK, T0 + 7).record(SLOW_OK, T0 + 7.5)
    assert window_from_dict(count.to_dict()) == count
    assert window_from_dict(time.to_dict()) == time


def test_a_full_count_window_of_ten_thousand_calls_is_about_ten_kilobytes_of_json():
    window = record_all(CountWindow(10_000), [FAIL, OK, SLOW_OK, SLOW_FAIL] * 3000)
    assert len(json.dumps(window.to_dict())) < 10_100
    assert window.tally(T0) == Tally(10_000, 5000, 5000)


def test_a_full_time_window_stores_short_gaps_rather_than_epoch_seconds():
    window = TimeWindow(10_000)
    for second in range(10_000):
        window = window.record(FAIL, T0 + second)
    assert len(json.dumps(window.to_dict(), separators=(",", ":"))) < 11 * 10_000
    assert window.tally(T0 + 9_999) == Tally(10_000, 10_000, 0)


# --- properties against a recount of the full history ---------------------------------------

outcomes = st.sampled_from([OK, FAIL, SLOW_OK, SLOW_FAIL])
gaps = st.sampled_from([0.0, 0.0, 0.3, 0.7, 1.0, 2.0, 5.0, 50.0])


def recount(history):
    return sum((one for _, one in history), Tally())


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 12), history=st.lists(outcomes, max_size=60))
def test_a_count_window_always_equals_a_recount_of_the_last_size_outcomes(size, history):
    window = CountWindow(size)
    for i, one in enumerate(history):
        window = window.record(one, T0)
        assert window.tally(T0) == recount([(T0, o) for o in history[: i + 1][-size:]])
        assert len(window.outcomes) == min(i + 1, size)
        assert window_from_dict(json.loads(json.dumps(window.to_dict()))) == window


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 8), steps=st.lists(st.tuples(gaps, outcomes), max_size=60), probe=gaps)
def test_a_time_window_always_equals_a_recount_of_the_calls_of_the_last_size_seconds(size, steps, probe):
    window, history, now = TimeWindow(size), [], T0
    for gap, one in steps:
        now += gap
        window = window.record(one, now)
        history.append((now, one))
        for at in (now, now + probe):
            in_window = [(t, o) for t, o in history if math.floor(t) > math.floor(at) - size]
            assert window.tally(at) == recount(in_window)
        assert len(window.buckets) <= size
        assert window_from_dict(json.loads(json.dumps(window.to_dict()))) == window
