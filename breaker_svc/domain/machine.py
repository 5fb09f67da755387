"""The breaker's state machine as pure functions: (breaker, input, now) -> (new breaker, change).

Shaped after resilience4j's CircuitBreakerStateMachine: each state has one small handler for an
outcome and one for a permission request (the tables at the bottom), and every change of state
goes through `_transition`, the one place that checks it against LEGAL_TRANSITIONS, builds the
Change and starts the new state's data afresh. Nothing here reads a clock or does I/O: the store
passes `now` and persists the result. A call that changes nothing returns the very breaker it
was given (`new is old`), so a store may skip the write.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from breaker_svc.domain.breaker import Breaker, Change, Permission
from breaker_svc.domain.config import BreakerConfig
from services.validation import validate_dependency_name
from breaker_svc.domain.state import BreakerState, check_transition
from breaker_svc.domain.window import NO_CALLS, Tally, new_window, outcome, window_fits
from services.errors import InvalidArgument

S = BreakerState


def new_breaker(dependency: str, config: BreakerConfig, now: float) -> Breaker:
    config = config.validated()
    return Breaker(validate_dependency_name(dependency), config, S.CLOSED, new_window(config), now, reason="created")


def record_outcome(b: Breaker, success: bool, duration_s: float | None, now: float) -> tuple[Breaker, Change | None]:
    """Records one call in every state (the figures stay true); only CLOSED and HALF_OPEN act on it."""
    one = _classify(b.config, success, duration_s)
    failures = 0 if success else b.consecutive_failures + 1
    b = replace(b, window=b.window.record(one, now), consecutive_failures=failures)
    return _ON_OUTCOME[b.state](b, one, now)


def record_outcomes(
    b: Breaker, outcomes: Sequence[tuple[bool, float | None]], now: float
) -> tuple[Breaker, Change | None, int]:
    """Records (success, duration_s) outcomes in order, up to and including the first one that
    changes state; returns the breaker, that change (or None) and how many were recorded.

    Exactly `record_outcome` applied one by one, but in one step where no outcome can change
    the state (OPEN and the forced states) or only the window's figures and the failure streak
    can (CLOSED): the first breach is found on running integer figures, and the breaker and its
    window are built once. A HALF_OPEN trial is a handful of calls: one by one."""
    if b.state is S.HALF_OPEN:
        for n, (success, duration_s) in enumerate(outcomes, start=1):
            b, change = record_outcome(b, success, duration_s, now)
            if change is not None:
                return b, change, n
        return b, None, len(outcomes)
    ones = [_classify(b.config, success, duration_s) for success, duration_s in outcomes]
    n = len(ones)
    if b.state is S.CLOSED:
        n = b.window.first_breach(ones, now, _breach_test(b, ones)) or n
    recorded = ones[:n]
    streak = b.consecutive_failures
    for one in recorded:
        streak = streak + 1 if one.failed_calls else 0
    b = replace(b, window=b.window.record_run(recorded, now), consecutive_failures=streak)
    b, change = _ON_OUTCOME[b.state](b, NO_CALLS, now) if recorded else (b, None)
    return b, change, n


def _breach_test(b: Breaker, ones: list[Tally]) -> Callable[[int, int, int, int], bool]:
    """`_trip_reason` is not None, on running figures: rates over at least minimum_calls, or the
    failure streak (kept across the calls, which come in order k = 0, 1, ...)."""
    config, streak = b.config, b.consecutive_failures

    def breached(calls: int, failed: int, slow: int, k: int) -> bool:
        nonlocal streak
        streak = streak + 1 if ones[k].failed_calls else 0
        if calls >= config.minimum_calls and (
            100.0 * failed / calls >= config.failure_rate_threshold or 100.0 * slow / calls >= config.slow_call_rate_threshold
        ):
            return True
        return bool(config.consecutive_failure_threshold) and streak >= config.consecutive_failure_threshold

    return breached


def acquire(b: Breaker, now: float) -> tuple[Breaker, Permission, Change | None]:
    """Asks to make a call; an OPEN breaker whose wait has elapsed goes HALF_OPEN first."""
    b, change = advance(b, now)
    b, permission = _ON_ACQUIRE[b.state](b, now)
    return b, permission, change


def advance(b: Breaker, now: float) -> tuple[Breaker, Change | None]:
    """The timer: OPEN -> HALF_OPEN once the open wait has elapsed, and HALF_OPEN -> OPEN once
    the trial has gone undecided for max_half_open_wait_s; anything else is left as it is."""
    due = b.timer_due_at
    if due is None or now < due:
        return b, None
    if b.state is S.HALF_OPEN:
        undecided = f"trial undecided after {b.config.max_half_open_wait_s:g}s ({b.trial.calls} of {b.config.half_open_permitted_calls} calls)"
        return _open(b, undecided, now)
    reason = f"open wait of {b.open_until - b.state_changed_at:g}s elapsed"
    return _transition(b, S.HALF_OPEN, reason, now, permits_remaining=b.config.half_open_permitted_calls)


def force_open(b: Breaker, reason: str, now: float) -> tuple[Breaker, Change | None]:
    if b.state is S.FORCED_OPEN:
        return b, None
    return _transition(b, S.FORCED_OPEN, reason or "forced open", now)


def force_close(b: Breaker, reason: str, now: float) -> tuple[Breaker, Change | None]:
    if b.state is S.FORCED_CLOSED:
        return b, None
    return _transition(b, S.FORCED_CLOSED, reason or "forced closed", now)


def reset(b: Breaker, now: float) -> tuple[Breaker, Change | None]:
    """CLOSED with an empty window and no backoff history; a Change only if the state differed."""
    if b.state is S.CLOSED:
        return replace(b, **_fresh_start(b.config)), None
    return _close(b, "reset", now)


def configure(b: Breaker, config: BreakerConfig, now: float) -> tuple[Breaker, Change | None]:
    """Keeps the new config. Never a transition: the new thresholds judge the next outcome."""
    config = config.validated()
    if config == b.config:
        return b, None
    window = b.window if window_fits(b.window, config) else new_window(config)
    return replace(b, config=config, window=window, permits_remaining=_rescaled_permits(b, config)), None


# --- helpers shared by the states ----------------------------------------------------------


def _classify(config: BreakerConfig, success: bool, duration_s: float | None) -> Tally:
    if duration_s is not None and not (math.isfinite(duration_s) and duration_s >= 0):
        raise InvalidArgument(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    slow = duration_s is not None and duration_s >= config.slow_call_duration_threshold_s
    return outcome(failed=not success, slow=slow)


def _rate_breach(tally: Tally, config: BreakerConfig) -> str | None:
    """Why the tally's rates call for OPEN, or None (the caller checks minimum_calls)."""
    over = f"over {tally.calls} calls"
    if tally.failure_rate >= config.failure_rate_threshold:
        return f"failure rate {tally.failure_rate:.1f}% >= {config.failure_rate_threshold:.1f}% {over}"
    if tally.slow_call_rate >= config.slow_call_rate_threshold:
        return f"slow call rate {tally.slow_call_rate:.1f}% >= {config.slow_call_rate_threshold:.1f}% {over}"
    return None


def _fresh_start(config: BreakerConfig) -> dict[str, Any]:
    """What closing anew forgets: the window, the failure streak and the backoff history."""
    return {"window": new_window(config), "consecutive_failures": 0, "consecutive_openings": 0}


def _rescaled_permits(b: Breaker, config: BreakerConfig) -> int:
    """In HALF_OPEN, the permits left when the episode's total becomes the new config's."""
    if b.state is not S.HALF_OPEN:
        return 0
    handed_out = b.config.half_open_permitted_calls - b.permits_remaining
    return max(0, config.half_open_permitted_calls - handed_out)


def _transition(b: Breaker, to_state: BreakerState, reason: str, now: float, **entered: Any) -> tuple[Breaker, Change]:
    """The one way to change state. The Change carries the figures of the state being left
    (what the decision was made on); the new state's own data starts empty unless given."""
    check_transition(b.state, to_state)
    change = Change(b.dependency, b.state, to_state, reason, b.metrics(now), now, b.config.half_open_permitted_calls)
    state_data = {"open_until": None, "permits_remaining": 0, "trial": NO_CALLS, **entered}
    return replace(b, state=to_state, state_changed_at=now, reason=reason, **state_data), change


def _open(b: Breaker, reason: str, now: float) -> tuple[Breaker, Change]:
    wait = b.config.open_wait_for(b.consecutive_openings)
    return _transition(b, S.OPEN, reason, now, open_until=now + wait, consecutive_openings=b.consecutive_openings + 1)


def _close(b: Breaker, reason: str, now: float) -> tuple[Breaker, Change]:
    return _transition(b, S.CLOSED, reason, now, **_fresh_start(b.config))


# --- CLOSED: the sliding window decides -----------------------------------------------------


def _closed_on_outcome(b: Breaker, one: Tally, now: float) -> tuple[Breaker, Change | None]:
    reason = _trip_reason(b, now)
    return (b, None) if reason is None else _open(b, reason, now)


def _trip_reason(b: Breaker, now: float) -> str | None:
    config, tally = b.config, b.window.tally(now)
    if tally.calls >= config.minimum_calls and (breach := _rate_breach(tally, config)):
        return breach
    threshold = config.consecutive_failure_threshold
    if threshold and b.consecutive_failures >= threshold:
        return f"{b.consecutive_failures} consecutive failures >= {threshold}"
    return None


# --- HALF_OPEN: a fixed number of trial calls decide ------------------------------------------


def _half_open_on_outcome(b: Breaker, one: Tally, now: float) -> tuple[Breaker, Change | None]:
    b = replace(b, trial=b.trial + one)
    if b.trial.calls < b.config.half_open_permitted_calls:
        return b, None
    if breach := _rate_breach(b.trial, b.config):
        return _open(b, f"trial failed: {breach}", now)
    return _close(b, f"trial passed: {b.trial.calls - b.trial.failed_calls} of {b.trial.calls} calls succeeded", now)


def _half_open_on_acquire(b: Breaker, now: float) -> tuple[Breaker, Permission]:
    if b.permits_remaining == 0:
        return b, Permission(False, S.HALF_OPEN, 0.0)
    return replace(b, permits_remaining=b.permits_remaining - 1), Permission(True, S.HALF_OPEN, 0.0)


# --- OPEN and the forced states: outcomes only feed the figures -------------------------------


def _hold(b: Breaker, one: Tally, now: float) -> tuple[Breaker, Change | None]:
    # In OPEN these are calls that started before the opening; they must not move the state.
    return b, None


def _open_on_acquire(b: Breaker, now: float) -> tuple[Breaker, Permission]:
    # advance() has already turned an elapsed OPEN into HALF_OPEN, so the wait is still running.
    return b, Permission(False, S.OPEN, b.open_until - now)


def _permit(b: Breaker, now: float) -> tuple[Breaker, Permission]:
    return b, Permission(True, b.state, 0.0)


def _refuse(b: Breaker, now: float) -> tuple[Breaker, Permission]:
    return b, Permission(False, b.state, 0.0)


_ON_OUTCOME: dict[BreakerState, Callable[[Breaker, Tally, float], tuple[Breaker, Change | None]]] = {
    S.CLOSED: _closed_on_outcome,
    S.HALF_OPEN: _half_open_on_outcome,
    S.OPEN: _hold,
    S.FORCED_OPEN: _hold,
    S.FORCED_CLOSED: _hold,
}

_ON_ACQUIRE: dict[BreakerState, Callable[[Breaker, float], tuple[Breaker, Permission]]] = {
    S.CLOSED: _permit,
    S.HALF_OPEN: _half_open_on_acquire,
    S.OPEN: _open_on_acquire,
    S.FORCED_OPEN: _refuse,
    S.FORCED_CLOSED: _permit,
}
