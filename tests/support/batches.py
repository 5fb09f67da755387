"""Many gRPC calls at once, a bounded batch at a time."""

import asyncio
from collections.abc import Awaitable
from typing import Any


async def in_batches(calls: list[Awaitable[Any]], size: int = 50) -> list[Any]:
    """Awaits `calls` `size` at a time (gathered), and returns their results in order."""
    results: list[Any] = []
    for start in range(0, len(calls), size):
        results += await asyncio.gather(*calls[start : start + size])
    return results
