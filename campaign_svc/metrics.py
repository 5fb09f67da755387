"""Prometheus metrics of campaign_svc, refreshed from the database (the source of truth that
several replicas share) rather than counted in one process."""

import asyncio

import prometheus_client
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign_svc.domain import CampaignStatus, HoldKind
from campaign_svc.store import CampaignStore

log = structlog.get_logger()

CAMPAIGNS = prometheus_client.Gauge("campaign_campaigns", "Campaigns per status.", ["status"])
PAUSED_CAMPAIGNS = prometheus_client.Gauge(
    "campaign_paused_campaigns",
    "Campaigns held paused, by kind of hold (one held both ways counts under both).",
    ["hold_kind"],
)
JOB_COMMANDS_PENDING = prometheus_client.Gauge(
    "campaign_job_commands_pending", "Pause/resume calls to JobService not yet delivered."
)


async def refresh(engine: AsyncEngine, store: CampaignStore) -> None:
    async with engine.connect() as connection:
        by_status = await store.count_by_status(connection)
        held = await store.count_held(connection)
        pending = await store.pending_job_commands(connection)
    for status in CampaignStatus:
        CAMPAIGNS.labels(status.value).set(by_status.get(status, 0))
    for kind in HoldKind:
        PAUSED_CAMPAIGNS.labels(kind.value).set(held.get(kind, 0))
    JOB_COMMANDS_PENDING.set(pending)


async def run_refresher(engine: AsyncEngine, store: CampaignStore, interval_s: float) -> None:
    while True:
        try:
            await refresh(engine, store)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a missed refresh is not worth stopping for
            log.warning("metrics_refresh_failed", exc_info=True)
        await asyncio.sleep(interval_s)
