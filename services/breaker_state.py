"""The five breaker states, one enum for breaker_svc's domain and for its subscribers.

Values are the lowercase names of the proto enum values (`BREAKER_STATE_HALF_OPEN` ->
`half_open`); subscribers store them as such in their databases.
"""

from enum import Enum


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"

    @property
    def blocks_calls(self) -> bool:
        """True while work that needs the dependency must stay paused ("open" in SPEC.md)."""
        return self in (BreakerState.OPEN, BreakerState.FORCED_OPEN)
