"""Wires one campaign_svc: schema, engine, store, use cases, breaker mirror, job outbox,
metrics and the gRPC server. Tests run it in-process on port 0; `__main__` runs it for real."""

import asyncio
import contextlib

import grpc
import structlog
from campaign.v1 import campaign_pb2_grpc

from campaign_svc.metrics import run_refresher
from campaign_svc.outbox import JobCommandForwarder, JobServiceClient
from campaign_svc.servicer import ACCESS, SERVICE_NAME, CampaignServicer
from campaign_svc.settings import MIGRATIONS_DIR, CampaignSettings
from campaign_svc.store import CampaignStore
from campaign_svc.tables import breaker_states, breaker_watch_cursor
from campaign_svc.usecases import BreakerReconciler, CampaignUseCases
from services.db import create_engine, upgrade_schema
from services.freshness import report_freshness
from services.mirror import BreakerMirror
from services.server import ServiceHost

log = structlog.get_logger()


class CampaignApp:
    def __init__(self, settings: CampaignSettings) -> None:
        self.settings = settings
        self.host = ServiceHost("campaign_svc", settings.server)
        self.store = CampaignStore()
        self.engine = create_engine(settings.database_url)
        self.mirror = BreakerMirror(
            self.engine,
            breaker_states,
            breaker_watch_cursor,
            BreakerReconciler(self.store).on_state_change,
            settings.breaker_target,
            auto_pause=settings.auto_pause,
        )
        self.job_client = JobServiceClient(settings.job_target, settings.job_call_timeout_s, settings.server.service_token)
        self.forwarder = JobCommandForwarder(
            self.engine, self.store, self.job_client.send, backoff_max_s=settings.outbox_backoff_max_s
        )
        self.usecases = CampaignUseCases(
            self.engine, self.store, self.mirror, settings.breaker_stale_after_s, on_job_command=self.forwarder.wake
        )
        self.port: int | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> int:
        """Migrates the schema, starts the background work and serves; returns the bound port."""
        await upgrade_schema(self.settings.database_url, MIGRATIONS_DIR)
        servicer = CampaignServicer(self.usecases)

        def register(server: grpc.aio.Server) -> None:
            campaign_pb2_grpc.add_CampaignServiceServicer_to_server(servicer, server)

        self._tasks = [
            asyncio.create_task(self.mirror.run(), name="breaker-mirror"),
            asyncio.create_task(self.forwarder.run(), name="job-outbox"),
            asyncio.create_task(
                run_refresher(self.engine, self.store, self.settings.metrics_refresh_s), name="metrics"
            ),
        ]
        self.port = await self.host.start(register, [SERVICE_NAME], ACCESS)
        self._tasks.append(
            asyncio.create_task(
                report_freshness(self.mirror.watcher, self._on_freshness, self.settings.breaker_stale_after_s), name="freshness"
            )
        )
        return self.port

    async def _on_freshness(self, stale: bool) -> None:
        """Starts and resumes are refused (UNAVAILABLE) while the breaker states are stale, so
        `campaign.v1.CampaignService`'s health says so too (the overall health "" stays SERVING)."""
        await self.host.set_serving(SERVICE_NAME, not stale)

    async def close(self) -> None:
        """Stops the background work and releases connections (after the server stopped)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.job_client.close()
        await self.engine.dispose()

    async def stop(self) -> None:
        await self.host.stop()
        await self.close()
