"""Prometheus metrics of campaign_svc, refreshed from the database (the source of truth that
several replicas share) rather than counted in one process.

- campaign_campaigns{status}: campaigns per status.
- campaign_held{hold}: campaigns held paused, by kind of hold (one held both ways counts under
  both).
- campaign_job_command_outbox_backlog: pause/resume commands for job_svc not delivered yet.
- campaign_job_command_outbox_set_aside: those set aside after bounded retries (never sent).
"""

import asyncio

import prometheus_client
import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign_svc.domain import CampaignStatus, HoldKind
from campaign_svc.store import CampaignStore

log = structlog.get_logger()

CAMPAIGNS = prometheus_client.Gauge("campaign_campaigns", "Campaigns per status.", ["status"])
HELD = prometheus_client.Gauge(
    "campaign_held", "Campaigns held paused, by kind of hold (one held both ways counts under both).", ["hold"]
)
JOB_COMMAND_OUTBOX_BACKLOG = prometheus_client.Gauge(
    "campaign_job_command_outbox_backlog", "Pause/resume commands for job_svc not delivered yet."
)

JOB_COMMAND_OUTBOX_SET_ASIDE = prometheus_client.Gauge(
    "campaign_job_command_outbox_set_aside", "Pause/resume commands for job_svc set aside after bounded retries (never sent)."
)


async def refresh(engine: AsyncEngine, store: CampaignStore) -> None:
    async with engine.connect() as connection:
        by_status = await store.count_by_status(connection)
        held = await store.count_held(connection)
        pending = await store.pending_job_commands(connection)
        set_aside = await store.set_aside_job_commands(connection)
    for status in CampaignStatus:
        CAMPAIGNS.labels(status.value).set(by_status.get(status, 0))
    for kind in HoldKind:
        HELD.labels(kind.value).set(held.get(kind, 0))
    JOB_COMMAND_OUTBOX_BACKLOG.set(pending)
    JOB_COMMAND_OUTBOX_SET_ASIDE.set(set_aside)


async def run_refresher(engine: AsyncEngine, store: CampaignStore, interval_s: float) -> None:
    while True:
        try:
            await refresh(engine, store)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a missed refresh is not worth stopping for
            log.warning("metrics_refresh_failed", exc_info=True)
        await asyncio.sleep(interval_s)
