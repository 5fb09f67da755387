"""The transition table, exhaustively: every operation applied to a breaker in every state."""

import itertools

import pytest

from breaker_svc.domain import (
    LEGAL_TRANSITIONS,
    BreakerConfig,
    BreakerState,
    IllegalTransition,
    acquire,
    advance,
    configure,
    force_close,
    force_open,
    new_breaker,
    record_outcome,
    reset,
)
from breaker_svc.domain.state import check_transition

S = BreakerState
T0 = 1_700_000_000.0
CONFIG = BreakerConfig(
    window_size=4, minimum_calls=2, slow_call_rate_threshold=50, open_wait_s=5.0, half_open_permitted_calls=2
)

EXPECTED_TABLE = {
    (S.CLOSED, S.OPEN),
    (S.OPEN, S.HALF_OPEN),
    (S.HALF_OPEN, S.CLOSED),
    (S.HALF_OPEN, S.OPEN),
    *((s, S.FORCED_OPEN) for s in (S.CLOSED, S.OPEN, S.HALF_OPEN, S.FORCED_CLOSED)),
    *((s, S.FORCED_CLOSED) for s in (S.CLOSED, S.OPEN, S.HALF_OPEN, S.FORCED_OPEN)),
    *((s, S.CLOSED) for s in (S.OPEN, S.FORCED_OPEN, S.FORCED_CLOSED)),
}


def in_state(state: BreakerState):
    """A breaker in `state`, reached by the machine's own operations, one outcome away from its
    next automatic transition: CLOSED has one failure of the two it needs, HALF_OPEN one trial
    success of the two it admits."""
    b = new_breaker("dep", CONFIG, T0)
    if state is S.FORCED_OPEN:
        return force_open(b, "ops", T0)[0]
    if state is S.FORCED_CLOSED:
        return force_close(b, "ops", T0)[0]
    b = record_outcome(b, False, None, T0)[0]
    if state is not S.CLOSED:
        b = record_outcome(b, False, None, T0)[0]
    if state is S.HALF_OPEN:
        b = record_outcome(advance(b, b.open_until)[0], True, None, T0 + 5)[0]
    assert b.state is state
    return b


LATE = T0 + 100  # after any open wait
OPERATIONS = {
    "success": lambda b: record_outcome(b, True, None, LATE),
    "failure": lambda b: record_outcome(b, False, None, LATE),
    "slow success": lambda b: record_outcome(b, True, 1e6, LATE),
    "acquire early": lambda b: acquire(b, T0 + 1)[::2],
    "acquire late": lambda b: acquire(b, LATE)[::2],
    "advance early": lambda b: advance(b, T0 + 1),
    "advance late": lambda b: advance(b, LATE),
    "force open": lambda b: force_open(b, "ops", LATE),
    "force close": lambda b: force_close(b, "ops", LATE),
    "reset": lambda b: reset(b, LATE),
    "configure": lambda b: configure(b, BreakerConfig(window_size=8, minimum_calls=1, failure_rate_threshold=1), LATE),
}


def test_the_table_is_exactly_the_automatic_cycle_plus_forcing_and_resetting():
    assert LEGAL_TRANSITIONS == EXPECTED_TABLE and len(LEGAL_TRANSITIONS) == 15


@pytest.mark.parametrize(("from_state", "to_state"), list(itertools.product(S, S)))
def test_check_transition_accepts_exactly_the_pairs_of_the_table(from_state, to_state):
    if (from_state, to_state) in LEGAL_TRANSITIONS:
        check_transition(from_state, to_state)
    else:
        with pytest.raises(IllegalTransition):
            check_transition(from_state, to_state)


@pytest.mark.parametrize("state", list(S))
@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_operation_in_every_state_makes_only_legal_changes_that_match_the_result(state, operation):
    before = in_state(state)
    after, change = OPERATIONS[operation](before)
    if change is None:
        assert after.state is before.state
    else:
        assert (change.from_state, change.to_state) in LEGAL_TRANSITIONS
        assert (change.from_state, change.to_state) == (before.state, after.state)
        assert change.at == LATE and after.state_changed_at == LATE and after.reason == change.reason


def test_every_pair_of_the_table_is_reached_by_some_operation():
    reached = set()
    for state, operation in itertools.product(S, OPERATIONS):
        _, change = OPERATIONS[operation](in_state(state))
        if change is not None:
            reached.add((change.from_state, change.to_state))
    assert reached == LEGAL_TRANSITIONS


@pytest.mark.parametrize(
    ("state", "operation", "to_state"),
    [
        (S.CLOSED, "failure", S.OPEN),
        (S.OPEN, "advance late", S.HALF_OPEN),
        (S.OPEN, "acquire late", S.HALF_OPEN),
        (S.HALF_OPEN, "success", S.CLOSED),
        (S.HALF_OPEN, "failure", S.OPEN),
        (S.HALF_OPEN, "slow success", S.OPEN),
    ],
)
def test_the_automatic_transitions_come_from_outcomes_and_the_timer(state, operation, to_state):
    after, change = OPERATIONS[operation](in_state(state))
    assert change.to_state is to_state and after.state is to_state


@pytest.mark.parametrize(
    ("state", "operation"),
    [(S.FORCED_OPEN, "force open"), (S.FORCED_CLOSED, "force close"), (S.CLOSED, "reset")]
    + [(s, op) for s in S for op in ("configure", "advance early", "acquire early") if s is not S.OPEN]
    + [(S.OPEN, "advance early"), (S.OPEN, "acquire early")],
)
def test_these_operations_change_no_state(state, operation):
    before = in_state(state)
    after, change = OPERATIONS[operation](before)
    assert change is None and after.state is before.state
