"""The five breaker states and the table of legal changes between them.

Every Change the machine makes is checked against LEGAL_TRANSITIONS in one place
(`check_transition`), as resilience4j checks each state swap: a pair missing from the table is a
bug in the machine, never the caller's fault, so it raises IllegalTransition (not InvalidArgument).
"""

from services.breaker_state import BreakerState

_S = BreakerState

# The automatic cycle, then what operators may do from anywhere: force either way, or reset.
_AUTOMATIC = {(_S.CLOSED, _S.OPEN), (_S.OPEN, _S.HALF_OPEN), (_S.HALF_OPEN, _S.CLOSED), (_S.HALF_OPEN, _S.OPEN)}
_FORCED = {(s, to) for to in (_S.FORCED_OPEN, _S.FORCED_CLOSED) for s in _S if s is not to}
_RESET = {(s, _S.CLOSED) for s in _S if s is not _S.CLOSED}

LEGAL_TRANSITIONS: frozenset[tuple[BreakerState, BreakerState]] = frozenset(_AUTOMATIC | _FORCED | _RESET)


class IllegalTransition(AssertionError):
    """The machine tried a change that is not in LEGAL_TRANSITIONS: a bug, not bad input."""


def check_transition(from_state: BreakerState, to_state: BreakerState) -> None:
    if (from_state, to_state) not in LEGAL_TRANSITIONS:
        raise IllegalTransition(f"illegal breaker transition {from_state.value} -> {to_state.value}")
