"""The circuit breaker's domain: pure values and functions, no I/O, no clock (`now` is passed in).

Stores call the functions of `machine` inside their atomic compare-and-swap; the servicer maps
these values to and from protobuf.
"""

from breaker_svc.domain.breaker import Breaker, Change, Metrics, Permission
from breaker_svc.domain.config import BreakerConfig, WindowType
from breaker_svc.domain.machine import (
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
from services.validation import validate_dependency_name
from breaker_svc.domain.state import LEGAL_TRANSITIONS, BreakerState, IllegalTransition
from breaker_svc.domain.window import CountWindow, Tally, TimeWindow, Window

__all__ = [
    "LEGAL_TRANSITIONS",
    "Breaker",
    "BreakerConfig",
    "BreakerState",
    "Change",
    "CountWindow",
    "IllegalTransition",
    "Metrics",
    "Permission",
    "Tally",
    "TimeWindow",
    "Window",
    "WindowType",
    "acquire",
    "advance",
    "configure",
    "force_close",
    "force_open",
    "new_breaker",
    "record_outcome",
    "record_outcomes",
    "reset",
    "validate_dependency_name",
]
