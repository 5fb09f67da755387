"""Capped exponential backoff with jitter, for every loop that retries a peer or the database."""

import asyncio
import random


class Backoff:
    """Each `wait()` sleeps up to twice as long as the one before (between half and all of it,
    so that replicas retrying together spread out), never more than `max_s`; `reset()` after a
    success starts again from `initial_s`."""

    def __init__(self, initial_s: float, max_s: float) -> None:
        self._initial_s = initial_s
        self._max_s = max_s
        self.next_s = initial_s

    async def wait(self) -> None:
        await asyncio.sleep(self.next_s * random.uniform(0.5, 1.0))
        self.next_s = min(self.next_s * 2, self._max_s)

    def reset(self) -> None:
        self.next_s = self._initial_s
