"""The standard gRPC server metrics, under the names and labels of go-grpc-prometheus (and
py-grpc-prometheus), which every gRPC dashboard expects:

- grpc_server_started_total{grpc_type, grpc_service, grpc_method}
- grpc_server_handled_total{grpc_type, grpc_service, grpc_method, grpc_code}
- grpc_server_msg_received_total{grpc_type, grpc_service, grpc_method}
- grpc_server_msg_sent_total{grpc_type, grpc_service, grpc_method}
- grpc_server_handling_seconds{grpc_type, grpc_service, grpc_method}: unary calls only, so that
  hours-long WatchTransitions streams do not drown the latency of the calls that matter.

`grpc_method` is the method's name alone (`CreateJob`), `grpc_service` the full service name
(`job.v1.JobService`), `grpc_type` one of UNARY, CLIENT_STREAM, SERVER_STREAM, BIDI_STREAM.

They are counted by the one service interceptor (services/interceptors.py), which knows the
status code it mapped each error to. The maintained libraries did not fit grpc.aio with these
names: py-grpc-prometheus has no asyncio interceptor, py-async-grpc-prometheus times streams in
the histogram, counts no unary messages and misses cancelled streams, and OpenTelemetry's
gRPC instrumentation exports `rpc_server_duration` under its own semantic conventions.
"""

from collections.abc import AsyncIterator

import prometheus_client

_LABELS = ["grpc_type", "grpc_service", "grpc_method"]

STARTED = prometheus_client.Counter("grpc_server_started_total", "RPCs started on the server.", _LABELS)
HANDLED = prometheus_client.Counter(
    "grpc_server_handled_total", "RPCs completed on the server, whatever their status.", [*_LABELS, "grpc_code"]
)
MSG_RECEIVED = prometheus_client.Counter("grpc_server_msg_received_total", "Messages received from clients.", _LABELS)
MSG_SENT = prometheus_client.Counter("grpc_server_msg_sent_total", "Messages sent to clients.", _LABELS)
HANDLING_SECONDS = prometheus_client.Histogram(
    "grpc_server_handling_seconds", "Time to handle a unary RPC, until its status.", _LABELS
)

UNARY = "UNARY"


def rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    if request_streaming and response_streaming:
        return "BIDI_STREAM"
    if request_streaming:
        return "CLIENT_STREAM"
    return "SERVER_STREAM" if response_streaming else UNARY


class RpcMetrics:
    """The metric series of one method; one per method and type, built when a call arrives."""

    def __init__(self, full_method: str, grpc_type: str) -> None:
        service, _, method = full_method.lstrip("/").rpartition("/")
        self._labels = (grpc_type, service, method)
        self._unary = grpc_type == UNARY
        self._request_streaming = grpc_type in ("CLIENT_STREAM", "BIDI_STREAM")
        self._started = STARTED.labels(*self._labels)
        self._received = MSG_RECEIVED.labels(*self._labels)
        self.sent = MSG_SENT.labels(*self._labels)

    def started(self, request_or_iterator: object) -> object:
        """Counts the call and its request; returns the request (a stream of them counted as
        they arrive)."""
        self._started.inc()
        if self._request_streaming:
            return self._counting_received(request_or_iterator)  # type: ignore[arg-type]
        self._received.inc()
        return request_or_iterator

    def handled(self, code_name: str, duration_s: float) -> None:
        HANDLED.labels(*self._labels, code_name).inc()
        if self._unary:
            HANDLING_SECONDS.labels(*self._labels).observe(duration_s)

    async def _counting_received(self, requests: AsyncIterator[object]) -> AsyncIterator[object]:
        async for request in requests:
            self._received.inc()
            yield request
