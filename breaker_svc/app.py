"""Wires breaker_svc together: store, hub, timer, use cases and servicer on a ServiceHost.

`python -m breaker_svc` runs it; tests start the same app in-process on port 0.
"""

import asyncio

import grpc
import structlog
from breaker.v1 import breaker_pb2_grpc

from breaker_svc.hub import TransitionHub
from breaker_svc.servicer import ACCESS, SERVICE_NAME, BreakerServicer
from breaker_svc.settings import BreakerSettings
from breaker_svc.store import BreakerStore, create_store
from breaker_svc.usecases import BreakerUseCases, run_breaker_timer
from services.config import ServerSettings
from services.server import ServiceHost

log = structlog.get_logger()


class BreakerApp:
    def __init__(self, settings: BreakerSettings, server_settings: ServerSettings, store: BreakerStore | None = None) -> None:
        self.settings = settings
        self.store = store or create_store(settings)
        self.hub = TransitionHub(self.store, buffer_size=settings.watch_buffer, heartbeat_s=settings.heartbeat_s)
        self.use_cases = BreakerUseCases(self.store, self.hub, settings.default_config)
        self.host = ServiceHost("breaker_svc", server_settings)
        self.port = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> int:
        await self.store.check_incarnation()  # a restarted Redis gets its new epoch before anything
        await self.hub.start()
        self._tasks.append(
            asyncio.create_task(run_breaker_timer(self.use_cases, self.store, self.settings.timer_interval_s), name="breaker-timer")
        )
        self._tasks.append(asyncio.create_task(self._check_incarnation(), name="breaker-incarnation"))
        self._tasks.append(asyncio.create_task(self._end_streams_on_shutdown(), name="end-streams"))
        servicer = BreakerServicer(self.use_cases)

        def register(server: grpc.aio.Server) -> None:
            breaker_pb2_grpc.add_BreakerServiceServicer_to_server(servicer, server)

        self.port = await self.host.start(register, [SERVICE_NAME], ACCESS)
        log.info("breaker_started", port=self.port, store=self.settings.store, revision=self.hub.position)
        return self.port

    async def _check_incarnation(self) -> None:
        """At the timer's pace, moves the log to a new epoch if Redis restarted (perhaps from an
        older save): commits and snapshots check this themselves, this makes an idle log's
        heartbeats and resumes move promptly too."""
        while True:
            try:
                if await self.store.check_incarnation():
                    log.warning("breaker_store_restarted_new_epoch")
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - an outage must not end the check
                log.warning("breaker_incarnation_check_failed", exc_info=True)
            await asyncio.sleep(self.settings.timer_interval_s)

    async def _end_streams_on_shutdown(self) -> None:
        await self.host.shutting_down.wait()
        await self.hub.close()

    async def close(self) -> None:
        """Releases what `start` took (after the server has stopped)."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        await self.hub.close()
        await self.store.close()

    async def stop(self) -> None:
        await self.host.stop()
        await self.close()
