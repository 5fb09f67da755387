"""Server bootstrap shared by the three services: grpc.aio, health, reflection, interceptors,
TLS, metrics endpoint and graceful shutdown.

TLS: with TLS_CERT_FILE and TLS_KEY_FILE the gRPC port serves TLS only, and with
TLS_CLIENT_CA_FILE it also requires a client certificate signed by that CA (mTLS). The metrics
port (HTTP) and the optional health port stay plaintext: the first carries only counters, the
second only grpc.health.v1, for the kubelet's gRPC probes, which cannot dial TLS.

Shutdown is a mode (SIGTERM or SIGINT): health goes NOT_SERVING, `shutting_down` is set so
streaming handlers end their streams cleanly, calls that already reached the server are drained
(see `ServiceHost.stop`), the server stops taking new calls and waits up to `grace_s` for
in-flight calls, then the service's own clean-up runs.
"""

import asyncio
import gc
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import grpc
import prometheus_client
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from services.auth import Access, Tokens
from services.config import ConfigError, ServerSettings, ServerTLS
from services.interceptors import ServiceInterceptor
from services.logging import configure_logging
from services.tracing import configure as configure_tracing

if TYPE_CHECKING:
    from services.otel_tracing import Tracing

log = structlog.get_logger()

# A burst of calls is taken up by grpc.aio one call at a time; those the server has received but
# not yet handed to a handler are cancelled by grpc's shutdown. So `stop` first waits until no
# call has arrived for this long (at most half the grace period), and only then stops the server.
DRAIN_QUIET_S = 0.2


class _ArrivalClock(grpc.aio.ServerInterceptor):
    """Notes when the last call was handed to the service (any method, health included)."""

    def __init__(self) -> None:
        self.last_at = float("-inf")

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        self.last_at = time.monotonic()
        return await continuation(handler_call_details)


SERVER_OPTIONS = [
    # Without this, a second process could bind the same port silently (SO_REUSEPORT).
    ("grpc.so_reuseport", 0),
    # Accept the keepalive pings our clients send on idle channels (services.client.channel:
    # every 20 s, with or without calls); grpc's default answers pings more often than every
    # 5 minutes with GOAWAY too_many_pings, which drops the watch streams' connections.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
]

class ServiceHost:
    def __init__(self, service_name: str, settings: ServerSettings) -> None:
        self.service_name = service_name
        self.settings = settings
        self.shutting_down = asyncio.Event()
        self.health = HealthServicer()
        self._server: grpc.aio.Server | None = None
        self._health_server: grpc.aio.Server | None = None
        self._stopped = False
        self._arrivals = _ArrivalClock()
        self.tracing: "Tracing | None" = None  # set by run_service when OTEL_* variables ask for it

    async def start(
        self,
        register: Callable[[grpc.aio.Server], None],
        service_full_names: list[str],
        access: Mapping[str, Access],
    ) -> int:
        """Starts serving; returns the bound port (useful with port 0 in tests). `access` is the
        services' tables of method -> access class (services.auth)."""
        tokens = Tokens(admin=self.settings.admin_token, service=self.settings.service_token)
        server = grpc.aio.server(
            interceptors=[
                self._arrivals, *(self.tracing.server_interceptors() if self.tracing else []), ServiceInterceptor(access, tokens)
            ],
            options=SERVER_OPTIONS,
        )
        register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        reflection.enable_server_reflection(
            [*service_full_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            server,
        )
        address = f"{self.settings.host}:{self.settings.port}"
        tls = self.settings.tls
        port = server.add_secure_port(address, _credentials(tls)) if tls else server.add_insecure_port(address)
        await server.start()
        self._server = server
        if self.settings.health_port:
            self._health_server = await self._serve_health(self.settings.health_port)
        for name in ["", *service_full_names]:
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self.settings.metrics_port:
            prometheus_client.start_http_server(self.settings.metrics_port, addr=self.settings.host)
        log.info(
            "server_started", port=port, tls=_tls_mode(tls), metrics_port=self.settings.metrics_port,
            health_port=self.settings.health_port,
        )
        return port

    async def _serve_health(self, port: int) -> grpc.aio.Server:
        """grpc.health.v1 alone, plaintext, sharing the main server's health states."""
        server = grpc.aio.server(options=SERVER_OPTIONS)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        server.add_insecure_port(f"{self.settings.host}:{port}")
        await server.start()
        return server

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
        started = time.monotonic()
        await self._drain_arrivals(started + self.settings.grace_s / 2)
        await self._server.stop(max(0.0, self.settings.grace_s - (time.monotonic() - started)))
        if self._health_server is not None:
            await self._health_server.stop(0)

    async def _drain_arrivals(self, deadline: float) -> None:
        """Lets the calls that reached the server before the signal get their handler: returns
        once none has arrived for DRAIN_QUIET_S (at once on an idle server), or at `deadline`."""
        while (quiet_s := time.monotonic() - self._arrivals.last_at) < DRAIN_QUIET_S and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_QUIET_S - quiet_s)


def _credentials(tls: ServerTLS) -> grpc.ServerCredentials:
    key_pair = (Path(tls.key_file).read_bytes(), Path(tls.cert_file).read_bytes())
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials([key_pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def _tls_mode(tls: ServerTLS | None) -> str:
    if tls is None:
        return "off"
    return "mtls" if tls.client_ca_file else "tls"


class ServedApp(Protocol):
    """What each service's app offers its entry point."""

    host: ServiceHost

    async def start(self) -> int: ...

    async def close(self) -> None: ...


# Collection thresholds: the young generation after this many allocations (CPython: 700), the
# middle one every 50 young collections, the oldest every 100 of those (CPython: 10 and 10).
GC_THRESHOLDS = (50_000, 50, 100)


def tune_garbage_collection() -> None:
    """Once a service is up. A call allocates hundreds of short-lived objects (protobuf messages,
    rows, coroutines, futures) that reference counting frees; the cycle collector, run every 700
    allocations by default, re-scanned the survivors every few calls for nothing: 12-22 % of
    job_svc's CPU in bench.job_queue's paths. So start-up's objects (modules, descriptors,
    SQLAlchemy metadata) are frozen out of its reach and the collector runs far less often
    (`GC_THRESHOLDS`); the rare cycles these services make wait a little longer to be freed."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_service(name: str, make_app: Callable[[], ServedApp]) -> int:
    """The body of every `python -m <service>`: build the app from the environment (a bad
    setting exits 2 with the message), serve until SIGTERM or SIGINT, then clean up."""

    async def serve() -> None:
        tracing = configure_tracing(name)  # before the app opens any channel
        app = make_app()
        configure_logging(name, app.host.settings.log_level)
        app.host.tracing = tracing
        await app.start()
        tune_garbage_collection()
        await app.host.run_until_signalled([app.close])
        if tracing is not None:
            tracing.shutdown()

    try:
        asyncio.run(serve())
    except ConfigError as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    return 0
