"""The breaker watch client as job_svc and campaign_svc use it: the protocol of
`services.client.watch` (which depends on grpcio and protobuf only), logging through structlog
like the rest of the services, and the proto <-> BreakerState mapping of the services.
"""

from collections.abc import Awaitable, Callable

import structlog
from breaker.v1 import breaker_pb2

from services.breaker_state import BreakerState
from services.client import watch as client_watch
from services.client.watch import BreakerView, Heartbeat, Position, Snapshot, Transition, WatchEvent, event_from_proto
from services.protoconv import ProtoEnum

__all__ = [
    "BREAKER_STATE",
    "BreakerState",
    "BreakerView",
    "BreakerWatcher",
    "Heartbeat",
    "Position",
    "Snapshot",
    "Transition",
    "WatchEvent",
    "event_from_proto",
]

BREAKER_STATE = ProtoEnum(breaker_pb2.BreakerState, BreakerState, "BREAKER_STATE_")


class BreakerWatcher(client_watch.BreakerWatcher):
    """`services.client.watch.BreakerWatcher` logging through structlog."""

    def __init__(
        self, target: str, resume_position: Callable[[], Awaitable[tuple[str | None, int | None]]], **options: object
    ) -> None:
        super().__init__(target, resume_position, log=structlog.get_logger(), **options)  # type: ignore[arg-type]
