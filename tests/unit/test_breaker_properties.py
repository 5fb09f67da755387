"""Random sequences of operations, checked step by step against a naive reference model.

The model restates the rules as plainly as possible (mutable, the window recounted from the
full history of calls every time), so the machine's running totals, eviction, backoff and
permit counting must agree with it after every step. Invariants are checked on the way.
"""

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breaker_svc.domain import (
    LEGAL_TRANSITIONS,
    Breaker,
    BreakerConfig,
    BreakerState,
    Change,
    Metrics,
    WindowType,
    acquire,
    advance,
    configure,
    force_close,
    force_open,
    new_breaker,
    record_outcome,
    record_outcomes,
    reset,
)

S = BreakerState
T0 = 1_700_000_000.0
SLOW_S = 2.0


class Model:
    """The breaker's rules, written the obvious way."""

    def __init__(self, config: BreakerConfig) -> None:
        self.config, self.state = config, S.CLOSED
        self.history: list[tuple[float, bool, bool]] = []  # (time, failed, slow) since the window began
        self.trial: list[tuple[bool, bool]] = []
        self.streak = self.openings = self.permits = 0
        self.open_until: float | None = None

    def window(self, now: float) -> list[tuple[bool, bool]]:
        size = self.config.window_size
        if self.config.window_type is WindowType.COUNT_BASED:
            return [(f, s) for _, f, s in self.history[-size:]]
        return [(f, s) for t, f, s in self.history if math.floor(t) > math.floor(now) - size]

    def calls(self, now: float) -> list[tuple[bool, bool]]:
        return self.trial if self.state is S.HALF_OPEN else self.window(now)

    def metrics(self, now: float) -> Metrics:
        calls = self.calls(now)
        n, failed, slow = len(calls), sum(f for f, _ in calls), sum(s for _, s in calls)
        return Metrics(n, failed, slow, 100.0 * failed / n if n else 0.0, 100.0 * slow / n if n else 0.0, self.streak)

    def breached(self, calls: list[tuple[bool, bool]]) -> bool:
        n = len(calls)
        failure_rate, slow_rate = 100.0 * sum(f for f, _ in calls) / n, 100.0 * sum(s for _, s in calls) / n
        return failure_rate >= self.config.failure_rate_threshold or slow_rate >= self.config.slow_call_rate_threshold

    def enter(self, state: BreakerState) -> tuple[BreakerState, BreakerState]:
        pair = (self.state, state)
        self.state, self.open_until, self.permits, self.trial = state, None, 0, []
        return pair

    def open(self, now: float) -> tuple[BreakerState, BreakerState]:
        c = self.config
        wait = c.max_open_wait_s  # also where the power would overflow
        if self.openings < 100:
            wait = min(c.open_wait_s * c.open_wait_multiplier**self.openings, c.max_open_wait_s)
        pair = self.enter(S.OPEN)
        self.open_until, self.openings = now + wait, self.openings + 1
        return pair

    def close(self) -> tuple[BreakerState, BreakerState]:
        self.history, self.streak, self.openings = [], 0, 0
        return self.enter(S.CLOSED)

    def record(self, success: bool, slow: bool, now: float):
        self.history.append((now, not success, slow))
        self.streak = 0 if success else self.streak + 1
        c = self.config
        if self.state is S.CLOSED:
            window = self.window(now)
            by_rate = len(window) >= c.minimum_calls and self.breached(window)
            by_streak = c.consecutive_failure_threshold > 0 and self.streak >= c.consecutive_failure_threshold
            return self.open(now) if by_rate or by_streak else None
        if self.state is S.HALF_OPEN:
            self.trial.append((not success, slow))
            if len(self.trial) >= c.half_open_permitted_calls:
                return self.open(now) if self.breached(self.trial) else self.close()
        return None

    def advance(self, now: float):
        if self.state is S.OPEN and now >= self.open_until:
            self.enter(S.HALF_OPEN)
            self.permits, self.half_open_since = self.config.half_open_permitted_calls, now
            return (S.OPEN, S.HALF_OPEN)
        trial_deadline = self.config.max_half_open_wait_s
        if self.state is S.HALF_OPEN and trial_deadline and now >= self.half_open_since + trial_deadline:
            return self.open(now)
        return None

    def acquire(self, now: float):
        change = self.advance(now)
        if self.state is S.HALF_OPEN:
            permitted = self.permits > 0
            self.permits -= permitted
        else:
            permitted = self.state in (S.CLOSED, S.FORCED_CLOSED)
        return change, permitted

    def force(self, state: BreakerState):
        return None if self.state is state else self.enter(state)

    def reset(self):
        if self.state is S.CLOSED:
            self.history, self.streak, self.openings = [], 0, 0
            return None
        return self.close()

    def configure(self, config: BreakerConfig) -> None:
        old, self.config = self.config, config
        if (old.window_type, old.window_size) != (config.window_type, config.window_size):
            self.history = []
        if self.state is S.HALF_OPEN:
            handed_out = old.half_open_permitted_calls - self.permits
            self.permits = max(0, config.half_open_permitted_calls - handed_out)


@st.composite
def configs(draw) -> BreakerConfig:
    window_type = draw(st.sampled_from(WindowType))
    size = draw(st.integers(1, 6))
    open_wait_s = draw(st.sampled_from([0.5, 1.0, 3.0, 10.0]))
    return BreakerConfig(
        window_type=window_type,
        window_size=size,
        minimum_calls=draw(st.integers(1, size if window_type is WindowType.COUNT_BASED else 8)),
        failure_rate_threshold=draw(st.sampled_from([1.0, 25.0, 50.0, 66.7, 100.0])),
        slow_call_rate_threshold=draw(st.sampled_from([1.0, 50.0, 100.0])),
        slow_call_duration_threshold_s=SLOW_S,
        consecutive_failure_threshold=draw(st.integers(0, 3)),
        open_wait_s=open_wait_s,
        open_wait_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0, 100.0])),
        max_open_wait_s=open_wait_s * draw(st.sampled_from([1, 2, 5, 1000])),
        half_open_permitted_calls=draw(st.integers(1, 4)),
        max_half_open_wait_s=draw(st.sampled_from([0.0, 1.0, 4.0])),
    )


record_op = st.tuples(st.just("record"), st.booleans(), st.sampled_from([None, 0.1, SLOW_S, 3 * SLOW_S]))
acquire_op, advance_op = st.just(("acquire",)), st.just(("advance",))
operator_op = st.one_of(
    st.sampled_from([("force_open",), ("force_close",), ("reset",)]),
    st.tuples(st.just("configure"), configs()),
)
# Mostly traffic, so that breakers go round the automatic cycle; now and then an operator.
operations = st.one_of(*[record_op] * 6, *[acquire_op] * 3, advance_op, operator_op)
# "due" jumps to the very moment the timer may act (the end of an OPEN wait, the deadline of a
# HALF_OPEN trial): the boundary matters.
gaps = st.sampled_from([0.0, 0.0, 0.25, 1.0, 3.0, 12.0, "due", "due"])


def apply(b: Breaker, model: Model, op: tuple, now: float):
    """Runs one operation on both; returns the breaker, its change, the model's, and a permission."""
    kind, args, permitted = op[0], op[1:], None
    if kind == "record":
        success, duration = args
        b, change = record_outcome(b, success, duration, now)
        expected = model.record(success, duration is not None and duration >= SLOW_S, now)
    elif kind == "acquire":
        b, permission, change = acquire(b, now)
        expected, permitted = model.acquire(now)
        assert permission.permitted == permitted and permission.state is b.state
        assert permission.retry_after_s == (b.open_until - now if b.state is S.OPEN else 0.0)
    elif kind == "advance":
        (b, change), expected = advance(b, now), model.advance(now)
    elif kind in ("force_open", "force_close"):
        force, state = (force_open, S.FORCED_OPEN) if kind == "force_open" else (force_close, S.FORCED_CLOSED)
        (b, change), expected = force(b, "ops", now), model.force(state)
    elif kind == "reset":
        (b, change), expected = reset(b, now), model.reset()
    else:
        (b, change), expected = configure(b, args[0], now), model.configure(args[0])
    return b, change, expected, permitted


def check_invariants(before: Breaker, b: Breaker, change: Change | None, now: float) -> None:
    config = b.config
    assert 0 <= b.permits_remaining <= config.half_open_permitted_calls
    assert b.permits_remaining == 0 or b.state is S.HALF_OPEN
    assert (b.open_until is not None) == (b.state is S.OPEN)
    if change is None:
        assert b.state is before.state
    else:
        assert (change.from_state, change.to_state) in LEGAL_TRANSITIONS
        assert (change.from_state, change.to_state) == (before.state, b.state)
        assert change.at == now == b.state_changed_at and change.reason == b.reason
        assert change.half_open_permitted_calls == before.config.half_open_permitted_calls
        assert Change.from_json(change.to_json()) == change
    if change and change.from_state is S.OPEN and change.to_state is S.HALF_OPEN:
        assert now >= before.open_until, "OPEN ended before open_until"
    if change and change.to_state is S.OPEN:
        assert config.open_wait_s <= b.open_until - now <= config.max_open_wait_s * (1 + 1e-12)
    s = b.to_json()
    assert Breaker.from_json(s) == b and Breaker.from_json(s).to_json() == s


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs(), steps=st.lists(st.tuples(gaps, operations), min_size=10, max_size=80))
def test_the_machine_agrees_with_the_reference_model_and_keeps_its_invariants(config, steps):
    now = T0
    b, model = new_breaker("dep", config, now), Model(config)
    granted, reconfigured = 0, False  # permits handed out in the current HALF_OPEN episode
    for gap, op in steps:
        now = max(now, b.timer_due_at or now) if gap == "due" else now + gap
        before = b
        b, change, expected, permitted = apply(b, model, op, now)
        check_invariants(before, b, change, now)
        if op[0] in ("advance", "acquire") and change and change.from_state is S.HALF_OPEN:
            # Only the timer ends a trial without a call: never before its deadline, never with none.
            deadline = before.config.max_half_open_wait_s
            assert deadline > 0 and now >= before.state_changed_at + deadline, "trial cut short"
        assert (None if change is None else (change.from_state, change.to_state)) == expected
        assert (b.state, b.open_until, b.permits_remaining) == (model.state, model.open_until, model.permits)
        assert (b.consecutive_openings, b.consecutive_failures) == (model.openings, model.streak)
        assert b.metrics(now) == model.metrics(now)
        if change is not None and change.to_state is S.HALF_OPEN:
            granted, reconfigured = 0, False
        reconfigured |= op[0] == "configure"
        if op[0] == "acquire" and b.state is S.HALF_OPEN and not reconfigured:
            # Exactly half_open_permitted_calls acquires succeed in an episode: the first ones.
            assert permitted == (granted < b.config.half_open_permitted_calls)
            granted += permitted


@settings(max_examples=100, deadline=None)
@given(config=configs(), outcomes=st.lists(st.booleans(), max_size=30))
def test_the_same_operations_always_produce_the_same_json(config, outcomes):
    def run() -> str:
        b = new_breaker("dep", config, T0)
        for i, success in enumerate(outcomes):
            b, _ = record_outcome(b, success, None, T0 + i)
            b, _, _ = acquire(b, T0 + i + 0.5)
        return b.to_json()

    assert run() == run()


@settings(max_examples=100, deadline=None)
@given(config=configs(), reopenings=st.integers(0, 40))
def test_the_open_wait_backs_off_by_the_multiplier_and_never_exceeds_the_cap(config, reopenings):
    b, now = new_breaker("dep", config, T0), T0
    b, _ = force_close(b, "", now)
    b, _ = reset(b, now)
    waits = []
    # Each opening needs at most minimum_calls failures (CLOSED) or a full trial (HALF_OPEN):
    # a config that never trips fails here instead of looping for ever.
    for _ in range((reopenings + 1) * (config.minimum_calls + config.half_open_permitted_calls + 1)):
        b, _ = record_outcome(b, False, None, now)
        if b.state is S.OPEN and b.state_changed_at == now:
            waits.append(b.open_until - now)
            now = b.open_until
            b, _ = advance(b, now)
        if len(waits) > reopenings:
            break
    assert len(waits) > reopenings, f"the breaker opened {len(waits)} times, not {reopenings + 1}"
    assert all(w <= config.max_open_wait_s for w in waits)
    assert waits == sorted(waits)
    assert waits[0] == config.open_wait_s


# --- record_outcomes: a batch in one step is the same as its outcomes one by one -------------

BATCH_CONFIGS = st.integers(1, 12).flatmap(
    lambda size: st.builds(
        BreakerConfig,
        window_type=st.sampled_from(list(WindowType)),
        window_size=st.just(size),
        minimum_calls=st.integers(1, size),
        failure_rate_threshold=st.sampled_from([10.0, 50.0, 100.0]),
        slow_call_rate_threshold=st.sampled_from([50.0, 100.0]),
        slow_call_duration_threshold_s=st.just(SLOW_S),
        consecutive_failure_threshold=st.integers(0, 5),
        half_open_permitted_calls=st.integers(1, 4),
    )
)
OUTCOMES = st.lists(st.tuples(st.booleans(), st.sampled_from([None, 0.1, SLOW_S])), max_size=30)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=BATCH_CONFIGS,
    before=OUTCOMES,
    batch=OUTCOMES,
    state=st.sampled_from([None, "open", "forced_open", "forced_close", "half_open"]),
    seconds=st.lists(st.integers(0, 3), min_size=2, max_size=2),
)
def test_record_outcomes_equals_recording_each_in_turn(config, before, batch, state, seconds) -> None:
    now = T0
    b = new_breaker("openai", config, now)
    for success, duration in before:
        b, _ = record_outcome(b, success, duration, now)
    now += seconds[0]
    if state == "open" and b.state is S.CLOSED:
        b, _ = force_open(b, "", now)
        b, _ = reset(b, now)
    if state == "forced_open":
        b, _ = force_open(b, "", now)
    elif state == "forced_close":
        b, _ = force_close(b, "", now)
    elif state == "half_open" and b.state is S.OPEN:
        b, _ = advance(b, b.open_until)
        now = max(now, b.state_changed_at)
    now += seconds[1]

    one_by_one, change, n = b, None, 0
    for success, duration in batch:
        one_by_one, change = record_outcome(one_by_one, success, duration, now)
        n += 1
        if change is not None:
            break
    assert record_outcomes(b, batch, now) == (one_by_one, change, n)
