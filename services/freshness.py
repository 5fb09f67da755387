"""Reports whether a subscriber's breaker states are fresh, as they turn stale or fresh again."""

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from services.subscriber_metrics import STALE
from services.watch import BreakerWatcher

log = structlog.get_logger()


async def report_freshness(
    watcher: BreakerWatcher,
    on_change: Callable[[bool], Awaitable[None]],
    stale_after_s: float,
    interval_s: float = 1.0,
) -> None:
    """Sets the `breaker_subscriber_stale` gauge and calls `on_change(stale)` at once and whenever the breaker stream has been silent for
    longer than `stale_after_s` (stale) or is heard again (fresh); runs for ever."""
    stale: bool | None = None
    while True:
        now_stale = watcher.is_stale(stale_after_s)
        if now_stale != stale:
            event = "breaker_state_stale" if now_stale else "breaker_state_fresh"
            (log.warning if now_stale else log.info)(event, seconds_since_contact=watcher.seconds_since_contact())
            STALE.set(1 if now_stale else 0)
            await on_change(now_stale)
            stale = now_stale
        await asyncio.sleep(interval_s)
