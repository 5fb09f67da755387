"""Server bootstrap shared by the three services: grpc.aio, health, reflection, interceptors,
metrics endpoint and graceful shutdown.

Shutdown is a mode (SIGTERM or SIGINT): health goes NOT_SERVING, `shutting_down` is set so
streaming handlers end their streams cleanly, the server stops taking new calls and waits up to
`grace_s` for in-flight calls, then the service's own clean-up runs.
"""

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Protocol

import grpc
import prometheus_client
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from services.config import ConfigError, ServerSettings
from services.interceptors import ServiceInterceptor
from services.logging import configure_logging

log = structlog.get_logger()


class ServiceHost:
    def __init__(self, service_name: str, settings: ServerSettings) -> None:
        self.service_name = service_name
        self.settings = settings
        self.shutting_down = asyncio.Event()
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._stopped = False

    async def start(
        self,
        register: Callable[[grpc.aio.Server], None],
        service_full_names: list[str],
        admin_methods: frozenset[str] = frozenset(),
    ) -> int:
        """Starts serving; returns the bound port (useful with port 0 in tests)."""
        server = grpc.aio.server(
            interceptors=[ServiceInterceptor(admin_methods, self.settings.admin_token)],
            # Without this, a second process could bind the same port silently (SO_REUSEPORT).
            options=[("grpc.so_reuseport", 0)],
        )
        register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*service_full_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        port = server.add_insecure_port(f"{self.settings.host}:{self.settings.port}")
        await server.start()
        self._server = server
        for name in ["", *service_full_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.settings.metrics_port:
            prometheus_client.start_http_server(self.settings.metrics_port, addr=self.settings.host)
        log.info("server_started", port=port, metrics_port=self.settings.metrics_port)
        return port

    async def set_serving(self, service_full_name: str, serving: bool) -> None:
        """Reports a dependency outage (or its end) through the health service."""
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if not self.shutting_down.is_set():
            await self.health.set(service_full_name, status)

    async def run_until_signalled(self, on_stop: list[Callable[[], Awaitable[None]]]) -> None:
        loop = asyncio.get_running_loop()
        signalled = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, signalled.set)
        await signalled.wait()
        log.info("shutdown_requested", grace_s=self.settings.grace_s)
        await self.stop()
        for clean_up in on_stop:
            await clean_up()
        log.info("server_stopped")

    async def stop(self) -> None:
        if self._stopped or self._server is None:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        self.shutting_down.set()
        await self._server.stop(self.settings.grace_s)


class ServedApp(Protocol):
    """What each service's app offers its entry point."""

    host: ServiceHost

    async def start(self) -> int: ...

    async def close(self) -> None: ...


def run_service(name: str, make_app: Callable[[], ServedApp]) -> int:
    """The body of every `python -m <service>`: build the app from the environment (a bad
    setting exits 2 with the message), serve until SIGTERM or SIGINT, then clean up."""

    async def serve() -> None:
        app = make_app()
        configure_logging(name, app.host.settings.log_level)
        await app.start()
        await app.host.run_until_signalled([app.close])

    try:
        asyncio.run(serve())
    except ConfigError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    return 0
