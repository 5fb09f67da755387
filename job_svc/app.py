"""Wires job_svc together: engine, store, use cases, servicer, the breaker mirror, the outcome
forwarder, the wake-ups of waiting claims (LISTEN on PostgreSQL) and the housekeeping loop
(lease sweeper, retention, staleness, metrics).

`JobApp.start()` applies migrations, starts serving and starts the background tasks;
`JobApp.close()` cancels them and disposes of the engine. Tests build it with port 0 and an
injected clock.
"""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from job.v1 import job_pb2_grpc

from job_svc import metrics
from job_svc.forwarder import OutcomeForwarder
from job_svc.servicer import ACCESS, SERVICE_NAME, JobServicer
from job_svc.settings import JobSettings
from job_svc.store import JobStore
from job_svc.tables import breaker_states, breaker_watch_cursor
from job_svc.usecases import JobUseCases, utc_now
from job_svc.wakeups import ClaimListener, ClaimSignal
from services.db import create_engine, is_sqlite, upgrade_schema
from services.freshness import report_freshness
from services.mirror import BreakerMirror
from services.server import ServiceHost

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
METRICS_EVERY_SWEEPS = 5

log = structlog.get_logger()


class JobApp:
    def __init__(self, settings: JobSettings, clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.engine = create_engine(settings.database_url)
        self.mirror = BreakerMirror(
            self.engine, breaker_states, breaker_watch_cursor, self._on_state_change, settings.breaker_target,
            auto_pause=settings.auto_pause,
        )
        self.signal = ClaimSignal(clock)
        self.store = JobStore(self.engine, self.mirror, self.signal)
        self.listener = ClaimListener(settings.database_url, self.signal, self._next_due)
        self.forwarder = OutcomeForwarder(
            self.store,
            settings.breaker_target,
            batch_size=settings.outbox_batch,
            linger_s=settings.outbox_linger_s,
            backoff_max_s=settings.outbox_retry_max_s,
            token=settings.server.service_token,
        )
        self.jobs = JobUseCases(
            self.store,
            self.mirror,
            retry_policy=settings.retry_policy,
            max_payload_bytes=settings.max_payload_bytes,
            stale_after_s=settings.breaker_stale_after_s,
            signal=self.signal,
            queue_policy=settings.queue_policy,
            clock=clock,
            outcomes_written=self.forwarder.wake,
        )
        self.host = ServiceHost("job_svc", settings.server)
        self.port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def _on_state_change(self, connection: Any, new: Any, old: Any) -> None:
        await self.jobs.reconcile(connection, new, old)

    async def start(self, *, follow_breakers: bool = True, forward_outcomes: bool = True, housekeeping: bool = True) -> int:
        await upgrade_schema(self.settings.database_url, MIGRATIONS_DIR)
        self.port = await self.host.start(
            lambda server: job_pb2_grpc.add_JobServiceServicer_to_server(JobServicer(self.jobs), server),
            [SERVICE_NAME],
            ACCESS,
        )
        self._spawn(self._end_waits_on_shutdown(), "end_waits_on_shutdown")
        if is_sqlite(self.engine):
            await self.listener.catch_up()  # one process owns the file: no notifications to hear
        else:
            self._spawn(self.listener.run(), "claim_listener")
        if follow_breakers:
            self._spawn(self.mirror.run(), "breaker_mirror")
        if forward_outcomes:
            self._spawn(self.forwarder.run(), "outcome_forwarder")
        if housekeeping:
            self._spawn(self._housekeeping(), "housekeeping")
            self._spawn(report_freshness(self.mirror.watcher, self._on_freshness, self.settings.breaker_stale_after_s), "freshness")
        return self.port

    async def _end_waits_on_shutdown(self) -> None:
        """SIGTERM: waiting claims answer at once (empty), so the drain is not held up by them."""
        await self.host.shutting_down.wait()
        self.signal.close()

    async def _next_due(self) -> datetime | None:
        async with self.store.transaction() as tx:
            return await tx.next_due(self.jobs.clock())

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(work, name=name))

    async def close(self) -> None:
        """Stops the background tasks and releases the database (after the server stopped)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        await self.engine.dispose()

    async def stop(self) -> None:
        await self.host.stop()
        await self.close()

    async def _housekeeping(self) -> None:
        """Returns expired leases to the queue, deletes old finished jobs and refreshes the
        gauges."""
        passes = 0
        while True:
            await asyncio.sleep(self.settings.sweep_interval_s)
            try:
                await self.jobs.requeue_expired()
                if passes % METRICS_EVERY_SWEEPS == 0:
                    await self.jobs.delete_old_finished_jobs()
                    await self._refresh_gauges()
            except Exception:  # noqa: BLE001 - the database may be down for a while; keep going
                log.exception("housekeeping_failed")
            passes += 1

    async def _on_freshness(self, stale: bool) -> None:
        """The queue keeps working on the last known states; `job.v1.JobService`'s health, the
        breaker_subscriber_stale gauge and GetQueueStatus say whether those states are stale (the overall health "",
        which probes use, stays SERVING)."""
        await self.host.set_serving(SERVICE_NAME, not stale)

    async def _refresh_gauges(self) -> None:
        now = self.jobs.clock()
        async with self.store.transaction() as tx:
            counts = await tx.counts_by_status()
            due = await tx.due_by_dependency(now)
            backlog = await tx.outbox_backlog()
        metrics.observe_database(counts, due, backlog, now)
