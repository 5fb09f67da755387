"""The breaker's values: Breaker, Change, Metrics, Permission, and their canonical JSON.

The Redis store compares serialized breakers for compare-and-swap, so `to_json` is canonical:
sorted keys, no spaces, canonical number types (times and rates always floats), and
`from_json(s).to_json() == s` for every string `to_json` produced.
"""

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from breaker_svc.domain.config import BreakerConfig
from breaker_svc.domain.state import BreakerState
from breaker_svc.domain.window import NO_CALLS, Tally, Window, window_from_dict

# Bumped when the JSON shape changes incompatibly.
_FORMAT = 1


def _dumps(d: dict[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class Metrics:
    calls: int
    failed_calls: int
    slow_calls: int
    failure_rate: float  # percent, 0.0 when calls == 0
    slow_call_rate: float  # percent, 0.0 when calls == 0
    consecutive_failures: int

    @classmethod
    def of(cls, tally: Tally, consecutive_failures: int) -> "Metrics":
        return cls(
            tally.calls,
            tally.failed_calls,
            tally.slow_calls,
            tally.failure_rate,
            tally.slow_call_rate,
            consecutive_failures,
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Metrics":
        return cls(**{**d, "failure_rate": float(d["failure_rate"]), "slow_call_rate": float(d["slow_call_rate"])})


@dataclass(frozen=True)
class Permission:
    permitted: bool
    state: BreakerState  # the state the decision was made in
    retry_after_s: float  # when refused in OPEN: seconds until it may go HALF_OPEN; else 0.0


@dataclass(frozen=True)
class Breaker:
    dependency: str
    config: BreakerConfig
    state: BreakerState
    window: Window  # every outcome lands here, in every state; only CLOSED judges it
    state_changed_at: float
    open_until: float | None = None  # OPEN only
    permits_remaining: int = 0  # HALF_OPEN only
    trial: Tally = NO_CALLS  # outcomes recorded in the current HALF_OPEN episode
    consecutive_failures: int = 0
    consecutive_openings: int = 0  # openings since the last HALF_OPEN -> CLOSED (or reset)
    revision: int = 0  # set by the store only
    reason: str = ""  # why the breaker is in its state

    def __post_init__(self) -> None:
        # Canonical types (see the module docstring): now=100 and now=100.0 make one breaker.
        object.__setattr__(self, "state", BreakerState(self.state))
        object.__setattr__(self, "state_changed_at", float(self.state_changed_at))
        object.__setattr__(self, "open_until", _float_or_none(self.open_until))

    @property
    def timer_due_at(self) -> float | None:
        """When the timer must look at this breaker: the end of an OPEN wait, or the deadline of
        an undecided HALF_OPEN trial; None when only traffic or an operator can change it."""
        if self.state is BreakerState.OPEN:
            return self.open_until
        if self.state is BreakerState.HALF_OPEN and self.config.max_half_open_wait_s > 0:
            return self.state_changed_at + self.config.max_half_open_wait_s
        return None

    def metrics(self, now: float) -> Metrics:
        """The window's figures at `now`; in HALF_OPEN, the trial's, which decide that state."""
        tally = self.trial if self.state is BreakerState.HALF_OPEN else self.window.tally(now)
        return Metrics.of(tally, self.consecutive_failures)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "dependency": self.dependency,
            "config": self.config.to_dict(),
            "state": self.state.value,
            "window": self.window.to_dict(),
            "state_changed_at": self.state_changed_at,
            "open_until": self.open_until,
            "permits_remaining": self.permits_remaining,
            "trial": self.trial.to_list(),
            "consecutive_failures": self.consecutive_failures,
            "consecutive_openings": self.consecutive_openings,
            "revision": self.revision,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Breaker":
        if d.get("format") != _FORMAT:
            raise ValueError(f"unsupported breaker format {d.get('format')!r}")
        fields = {k: v for k, v in d.items() if k != "format"}
        return cls(
            **{
                **fields,
                "config": BreakerConfig.from_dict(d["config"]),
                "window": window_from_dict(d["window"]),
                "trial": Tally.from_list(d["trial"]),
            }
        )

    def to_json(self) -> str:
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> "Breaker":
        return cls.from_dict(json.loads(s))


@dataclass(frozen=True)
class Change:
    """One state change, with the figures it was decided on (those of the state it left)."""

    dependency: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    metrics: Metrics
    at: float
    half_open_permitted_calls: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "from_state", BreakerState(self.from_state))
        object.__setattr__(self, "to_state", BreakerState(self.to_state))
        object.__setattr__(self, "at", float(self.at))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dependency": self.dependency,
            "from_state": self.from_state.value,
            "to_state": self.to_state.value,
            "reason": self.reason,
            "metrics": self.metrics.to_dict(),
            "at": self.at,
            "half_open_permitted_calls": self.half_open_permitted_calls,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Change":
        return cls(**{**d, "metrics": Metrics.from_dict(d["metrics"])})

    def to_json(self) -> str:
        return _dumps(self.to_dict())

    @classmethod
    def from_json(cls, s: str) -> "Change":
        return cls.from_dict(json.loads(s))
