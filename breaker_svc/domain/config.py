"""A breaker's configuration: one frozen value, validated in one place, serialized as a flat dict."""

import dataclasses
import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from services.errors import InvalidArgument
from services.validation import MAX_CALL_DURATION_S

MAX_WINDOW_SIZE = 10_000
MAX_CONSECUTIVE_FAILURE_THRESHOLD = 10_000
MAX_HALF_OPEN_PERMITTED_CALLS = 1_000
# One day. It bounds the backed-off wait too, so that open_until stays a sane timestamp.
MAX_OPEN_WAIT_S = 86_400.0
MAX_OPEN_WAIT_MULTIPLIER = 100.0
MAX_SLOW_CALL_DURATION_S = MAX_CALL_DURATION_S


class WindowType(str, Enum):
    COUNT_BASED = "count_based"
    TIME_BASED = "time_based"


class InvalidConfig(InvalidArgument):
    """A config value out of its range; `field` is the BreakerConfig field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


# What messages call each field: its name in breaker.v1.BreakerConfig, the one callers know.
PUBLIC_NAMES = {
    "window_type": "sliding_window_type",
    "window_size": "sliding_window_size",
    "minimum_calls": "minimum_calls",
    "failure_rate_threshold": "failure_rate_threshold",
    "slow_call_rate_threshold": "slow_call_rate_threshold",
    "slow_call_duration_threshold_s": "slow_call_duration_threshold",
    "consecutive_failure_threshold": "consecutive_failure_threshold",
    "open_wait_s": "open_wait_duration",
    "open_wait_multiplier": "open_wait_multiplier",
    "max_open_wait_s": "max_open_wait_duration",
    "half_open_permitted_calls": "half_open_permitted_calls",
    "max_half_open_wait_s": "max_half_open_wait_duration",
}
_DURATION_FIELDS = frozenset({"slow_call_duration_threshold_s", "open_wait_s", "max_open_wait_s", "max_half_open_wait_s"})

_FLOAT_FIELDS = (
    "failure_rate_threshold",
    "slow_call_rate_threshold",
    "slow_call_duration_threshold_s",
    "open_wait_s",
    "open_wait_multiplier",
    "max_open_wait_s",
    "max_half_open_wait_s",
)


@dataclass(frozen=True)
class BreakerConfig:
    window_type: WindowType = WindowType.COUNT_BASED
    window_size: int = 100  # calls (count-based) or seconds (time-based)
    minimum_calls: int = 10
    failure_rate_threshold: float = 50.0  # percent
    slow_call_rate_threshold: float = 100.0  # percent
    slow_call_duration_threshold_s: float = 60.0
    consecutive_failure_threshold: int = 0  # 0 = off
    open_wait_s: float = 30.0
    open_wait_multiplier: float = 1.0
    max_open_wait_s: float = 300.0
    half_open_permitted_calls: int = 3
    # A trial not decided within this time reopens the breaker, so permits handed to callers
    # that never report back cannot hold it HALF_OPEN for ever; 0 waits indefinitely.
    max_half_open_wait_s: float = 120.0

    def __post_init__(self) -> None:
        # Canonical types, so that equal configs always serialize alike (50 and 50.0 are equal,
        # but their JSON is not, and the Redis store compares JSON strings). Wrong types are left
        # for `validated` to report.
        if isinstance(self.window_type, str) and self.window_type in _WINDOW_TYPES:
            object.__setattr__(self, "window_type", WindowType(self.window_type))
        for name in _FLOAT_FIELDS:
            value = getattr(self, name)
            if type(value) is int:
                object.__setattr__(self, name, float(value))

    def validated(self) -> "BreakerConfig":
        """Returns self, or raises InvalidConfig naming the first bad field (by its public name)
        and its range."""
        if not isinstance(self.window_type, WindowType):
            raise InvalidConfig("window_type", f"sliding_window_type must be one of {', '.join(_WINDOW_TYPES)}, got {self.window_type!r}")
        _check_int("window_size", self.window_size, 1, MAX_WINDOW_SIZE)
        _check_minimum_calls(self)
        _check_float("failure_rate_threshold", self.failure_rate_threshold, 0.0, 100.0, low_open=True)
        _check_float("slow_call_rate_threshold", self.slow_call_rate_threshold, 0.0, 100.0, low_open=True)
        _check_float("slow_call_duration_threshold_s", self.slow_call_duration_threshold_s, 0.0, MAX_SLOW_CALL_DURATION_S, low_open=True)
        _check_consecutive_failure_threshold(self.consecutive_failure_threshold)
        _check_float("open_wait_s", self.open_wait_s, 0.0, MAX_OPEN_WAIT_S, low_open=True)
        _check_float("open_wait_multiplier", self.open_wait_multiplier, 1.0, MAX_OPEN_WAIT_MULTIPLIER)
        _check_max_open_wait(self)
        _check_int("half_open_permitted_calls", self.half_open_permitted_calls, 1, MAX_HALF_OPEN_PERMITTED_CALLS)
        _check_float("max_half_open_wait_s", self.max_half_open_wait_s, 0.0, MAX_OPEN_WAIT_S)
        return self

    def open_wait_for(self, consecutive_openings: int) -> float:
        """The wait of an opening preceded by `consecutive_openings` openings without recovery."""
        try:
            wait = self.open_wait_s * self.open_wait_multiplier**consecutive_openings
        except OverflowError:  # e.g. 100.0 ** 200: far beyond any cap
            wait = math.inf
        return min(wait, self.max_open_wait_s)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["window_type"] = self.window_type.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BreakerConfig":
        """The validated config; missing fields take their defaults, unknown ones are refused."""
        unknown = sorted(set(d) - _FIELD_NAMES)
        if unknown:
            raise InvalidArgument(f"unknown breaker config field(s): {', '.join(unknown)}")
        return cls(**d).validated()


_WINDOW_TYPES = tuple(t.value for t in WindowType)
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(BreakerConfig))


def _shown(value: object, field: str = "") -> str:
    """A value as a message shows it: 0.0 as 0, 2.5 as 2.5, a string quoted; durations with "s"."""
    finite = isinstance(value, (int, float)) and math.isfinite(value)
    unit = "s" if field in _DURATION_FIELDS and finite else ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return f"{int(value)}{unit}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value!r}{unit}"
    return repr(value)


def _check_int(field: str, value: object, low: int, high: int) -> None:
    name = PUBLIC_NAMES[field]
    if type(value) is not int:
        raise InvalidConfig(field, f"{name} must be an integer, got {_shown(value)}")
    if not low <= value <= high:
        raise InvalidConfig(field, f"{name} must be in {low}..{high}, got {value}")


def _check_float(field: str, value: object, low: float, high: float, *, low_open: bool = False) -> None:
    """Checks a finite number in [low, high] (or (low, high] when low_open)."""
    range_text = f"{'(' if low_open else '['}{_shown(low, field)}, {_shown(high, field)}]"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    above = number and (value > low if low_open else value >= low)
    below = number and value <= high
    if not (number and math.isfinite(value) and above and below):
        raise InvalidConfig(field, f"{PUBLIC_NAMES[field]} must be in {range_text}, got {_shown(value, field)}")


def _check_minimum_calls(config: BreakerConfig) -> None:
    if type(config.minimum_calls) is not int or config.minimum_calls < 1:
        raise InvalidConfig("minimum_calls", f"minimum_calls must be an integer >= 1, got {_shown(config.minimum_calls)}")
    # A count-based window never holds more than window_size calls: a larger minimum never trips.
    if config.window_type is WindowType.COUNT_BASED and config.minimum_calls > config.window_size:
        raise InvalidConfig(
            "minimum_calls",
            f"minimum_calls must be <= sliding_window_size ({config.window_size}) for a count-based window,"
            f" got {config.minimum_calls}",
        )


def _check_consecutive_failure_threshold(value: object) -> None:
    if type(value) is not int or not (value == 0 or 1 <= value <= MAX_CONSECUTIVE_FAILURE_THRESHOLD):
        raise InvalidConfig(
            "consecutive_failure_threshold",
            f"consecutive_failure_threshold must be 0 (off) or in 1..{MAX_CONSECUTIVE_FAILURE_THRESHOLD},"
            f" got {_shown(value)}",
        )


def _check_max_open_wait(config: BreakerConfig) -> None:
    value, field = config.max_open_wait_s, "max_open_wait_s"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and config.open_wait_s <= value <= MAX_OPEN_WAIT_S):
        raise InvalidConfig(
            field,
            f"max_open_wait_duration must be in [open_wait_duration ({_shown(config.open_wait_s, field)}),"
            f" {_shown(MAX_OPEN_WAIT_S, field)}], got {_shown(value, field)}",
        )
