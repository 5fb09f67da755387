"""Optional OpenTelemetry tracing, off by default, switched on by the standard OTEL_* variables.

On when `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`, or both comma-separated),
or when `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (then
`otlp`); `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` keeps it off. The OTLP exporter
(gRPC) reads its own OTEL_EXPORTER_OTLP_* settings; `OTEL_SERVICE_NAME` and
`OTEL_RESOURCE_ATTRIBUTES` name the service (by default the service's own name).

When on, opentelemetry-instrumentation-grpc does the work: a server interceptor opens a span
per RPC (continuing the caller's trace from its `traceparent` header), and every grpc.aio
channel opened afterwards sends the current trace on, so one trace follows a call from
campaign_svc to job_svc to breaker_svc.
"""

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from services.config import ConfigError

if TYPE_CHECKING:
    from services.otel_tracing import Tracing

EXPORTERS = ("otlp", "console")


def exporters_from_env(environ: Mapping[str, str] = os.environ) -> list[str]:
    """The span exporters the environment asks for; empty when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = [name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()]
    if not named:
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return ["otlp"] if endpoint else []
    if named == ["none"]:
        return []
    unknown = [name for name in named if name not in EXPORTERS]
    if unknown:
        raise ConfigError(f"OTEL_TRACES_EXPORTER must name {', '.join(EXPORTERS)} or none, got {unknown[0]!r}")
    return named


def configure(service_name: str) -> "Tracing | None":
    """Tracing for this process as the environment asks (None: off). Call before any server or
    channel is made."""
    exporters = exporters_from_env()
    if not exporters:
        return None
    from services.otel_tracing import Tracing  # only now: see services/otel_tracing.py

    return Tracing(service_name, exporters)
