"""Sliding windows of call outcomes, as immutable values.

Both windows keep running totals and subtract what they evict (resilience4j's
*SlidingWindowMetrics), so recording a call or reading the figures never rescans the window.
They are frozen like everything in the domain, so "recording" returns a new window; the copy of
the underlying string or tuple is one memcpy, and it is bounded by the window size.
"""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from breaker_svc.domain.config import BreakerConfig, WindowType


@dataclass(frozen=True)
class Tally:
    """Calls and how many of them failed or were slow; one outcome is a Tally of one call."""

    calls: int = 0
    failed_calls: int = 0
    slow_calls: int = 0

    def __add__(self, other: "Tally") -> "Tally":
        return Tally(*(a + b for a, b in zip(self.to_list(), other.to_list(), strict=True)))

    def __sub__(self, other: "Tally") -> "Tally":
        return Tally(*(a - b for a, b in zip(self.to_list(), other.to_list(), strict=True)))

    @property
    def failure_rate(self) -> float:
        """Percent; 0.0 with no calls."""
        return 100.0 * self.failed_calls / self.calls if self.calls else 0.0

    @property
    def slow_call_rate(self) -> float:
        """Percent; 0.0 with no calls."""
        return 100.0 * self.slow_calls / self.calls if self.calls else 0.0

    def to_list(self) -> list[int]:
        return [self.calls, self.failed_calls, self.slow_calls]

    @classmethod
    def from_list(cls, values: list[int]) -> "Tally":
        calls, failed, slow = values
        return cls(calls, failed, slow)


NO_CALLS = Tally()


def outcome(*, failed: bool, slow: bool) -> Tally:
    return _OUTCOMES[failed, slow]


_OUTCOMES = {(f, s): Tally(1, int(f), int(s)) for f in (False, True) for s in (False, True)}


# Count-based outcomes are one character each, so 10,000 calls are 10 kB of JSON:
# the digit is a bit set, 1 = failed, 2 = slow.
_CHAR_OF = {outcome(failed=f, slow=s): str(int(f) + 2 * int(s)) for f in (False, True) for s in (False, True)}
_OUTCOME_OF = {char: o for o, char in _CHAR_OF.items()}

# breached(calls, failed, slow, k): whether the window's figures after the k-th outcome of a run
# (counting from 0) call for OPEN.
Breached = Callable[[int, int, int, int], bool]


def _sum(ones: Sequence[Tally]) -> Tally:
    return Tally(sum(o.calls for o in ones), sum(o.failed_calls for o in ones), sum(o.slow_calls for o in ones))


@dataclass(frozen=True)
class CountWindow:
    """The last `size` outcomes, oldest first, and their running totals."""

    type: ClassVar[WindowType] = WindowType.COUNT_BASED
    size: int
    outcomes: str = ""
    totals: Tally = NO_CALLS

    def record(self, one: Tally, now: float) -> "CountWindow":
        if len(self.outcomes) < self.size:
            return CountWindow(self.size, self.outcomes + _CHAR_OF[one], self.totals + one)
        evicted = _OUTCOME_OF[self.outcomes[0]]
        return CountWindow(self.size, self.outcomes[1:] + _CHAR_OF[one], self.totals - evicted + one)

    def record_run(self, ones: Sequence[Tally], now: float) -> "CountWindow":
        """The window after recording `ones` in order, in one step."""
        if not ones:
            return self
        return self.counted(self.size, (self.outcomes + "".join(_CHAR_OF[o] for o in ones))[-self.size :])

    def first_breach(self, ones: Sequence[Tally], now: float, breached: Breached) -> int | None:
        """How many of `ones` are recorded when `breached` first holds on the running figures
        (None if it never does), without building a window per outcome."""
        combined = self.outcomes + "".join(_CHAR_OF[o] for o in ones)
        start, (calls, failed, slow) = len(self.outcomes), self.totals.to_list()
        for k in range(len(ones)):
            code = int(combined[start + k])
            calls, failed, slow = calls + 1, failed + (code & 1), slow + (code >> 1)
            evicted_at = start + k - self.size
            if evicted_at >= 0:
                gone = int(combined[evicted_at])
                calls, failed, slow = calls - 1, failed - (gone & 1), slow - (gone >> 1)
            if breached(calls, failed, slow, k):
                return k + 1
        return None

    def tally(self, now: float) -> Tally:
        return self.totals

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type.value, "size": self.size, "outcomes": self.outcomes}

    @classmethod
    def counted(cls, size: int, outcomes: str) -> "CountWindow":
        """The window holding `outcomes`, its totals counted."""
        failed = outcomes.count("1") + outcomes.count("3")
        slow = outcomes.count("2") + outcomes.count("3")
        return cls(size, outcomes, Tally(len(outcomes), failed, slow))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CountWindow":
        size, outcomes = d["size"], d["outcomes"]
        if len(outcomes) > size or not set(outcomes) <= _OUTCOME_OF.keys():
            raise ValueError(f"corrupt count-based window: {d!r:.200}")
        return cls.counted(size, outcomes)


@dataclass(frozen=True)
class TimeWindow:
    """Per-second aggregates of the last `size` seconds, oldest first, and their running totals.

    Only seconds that saw a call have a bucket, so a quiet window costs nothing. The window at
    `now` is the seconds floor(now) - size + 1 .. floor(now).
    """

    type: ClassVar[WindowType] = WindowType.TIME_BASED
    size: int
    buckets: tuple[tuple[int, Tally], ...] = ()  # (epoch second, aggregate of that second)
    totals: Tally = NO_CALLS

    def record(self, one: Tally, now: float) -> "TimeWindow":
        window = self._evicted(now)
        buckets, second = window.buckets, math.floor(now)
        # A clock that steps back (the store's clock moved) adds to the newest bucket, which keeps
        # the buckets in order and eviction a walk from the front.
        if buckets and second <= buckets[-1][0]:
            newest, tally = buckets[-1]
            buckets = buckets[:-1] + ((newest, tally + one),)
        else:
            buckets = buckets + ((second, one),)
        return TimeWindow(self.size, buckets, window.totals + one)

    def record_run(self, ones: Sequence[Tally], now: float) -> "TimeWindow":
        """The window after recording `ones` in order, in one step: at one `now` they all land
        in the same bucket."""
        return self.record(_sum(ones), now) if ones else self

    def first_breach(self, ones: Sequence[Tally], now: float, breached: Breached) -> int | None:
        """As CountWindow.first_breach: the running figures from the window at `now`."""
        calls, failed, slow = self._evicted(now).totals.to_list()
        for k, one in enumerate(ones):
            calls, failed, slow = calls + one.calls, failed + one.failed_calls, slow + one.slow_calls
            if breached(calls, failed, slow, k):
                return k + 1
        return None

    def tally(self, now: float) -> Tally:
        return self._evicted(now).totals

    def _evicted(self, now: float) -> "TimeWindow":
        """Without the buckets older than the window at `now`; each bucket is evicted once."""
        oldest_kept = math.floor(now) - self.size + 1
        gone, totals = 0, self.totals
        while gone < len(self.buckets) and self.buckets[gone][0] < oldest_kept:
            totals -= self.buckets[gone][1]
            gone += 1
        return self if gone == 0 else TimeWindow(self.size, self.buckets[gone:], totals)

    def to_dict(self) -> dict[str, Any]:
        # Each bucket as [seconds since the previous bucket, calls, failed, slow]: short numbers.
        rows, previous = [], 0
        for second, tally in self.buckets:
            rows.append([second - previous, *tally.to_list()])
            previous = second
        return {"type": self.type.value, "size": self.size, "buckets": rows}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TimeWindow":
        buckets, second, totals = [], 0, NO_CALLS
        for gap, *counts in d["buckets"]:
            second += gap
            buckets.append((second, Tally.from_list(counts)))
            totals += buckets[-1][1]
        return cls(d["size"], tuple(buckets), totals)


Window = CountWindow | TimeWindow


def new_window(config: BreakerConfig) -> Window:
    """An empty window of the config's type and size."""
    if config.window_type is WindowType.TIME_BASED:
        return TimeWindow(config.window_size)
    return CountWindow(config.window_size)


def window_fits(window: Window, config: BreakerConfig) -> bool:
    """True when the window has the type and size the config asks for (so it may be kept)."""
    return window.type is config.window_type and window.size == config.window_size


def window_from_dict(d: dict[str, Any]) -> Window:
    kinds = {CountWindow.type.value: CountWindow, TimeWindow.type.value: TimeWindow}
    return kinds[d["type"]].from_dict(d)
