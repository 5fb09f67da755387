"""The OpenTelemetry side of services.tracing, imported only when tracing is on: the SDK and the
OTLP exporter take a noticeable share of a service's start-up, which a feature that is off by
default should not cost."""

import os

import grpc
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, aio_server_interceptor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor


class Tracing:
    """The tracer provider of one service process, when tracing is on."""

    def __init__(self, service_name: str, exporters: list[str]) -> None:
        resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or service_name})
        self._provider = TracerProvider(resource=resource)
        for name in exporters:
            self._provider.add_span_processor(_processor(name))
        trace.set_tracer_provider(self._provider)
        GrpcAioInstrumentorClient().instrument()

    def server_interceptors(self) -> list[grpc.aio.ServerInterceptor]:
        return [aio_server_interceptor()]

    def shutdown(self) -> None:
        """Sends the spans still buffered (after the server stopped)."""
        self._provider.shutdown()


def _processor(exporter: str) -> SpanProcessor:
    if exporter == "console":  # for a look by hand: each span as JSON on stdout, at once
        return SimpleSpanProcessor(ConsoleSpanExporter())
    return BatchSpanProcessor(OTLPSpanExporter())
