"""Waiting for a condition with a deadline instead of a blind sleep."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], timeout_s: float = 10.0, interval_s: float = 0.02) -> T:
    """Polls `check` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last value {value!r})")
        await asyncio.sleep(interval_s)


def eventually_sync(check: Callable[[], T], timeout_s: float = 20.0, interval_s: float = 0.1) -> T:
    """`eventually` for synchronous checks (tests that drive processes with blocking clients)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s (last value {value!r})")
        time.sleep(interval_s)

