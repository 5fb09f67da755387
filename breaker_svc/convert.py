"""Protobuf <-> domain, both ways, and nothing else. Input checks that only the wire format can
fail (a malformed Duration, an unknown update_mask path) raise InvalidArgument here."""

from collections.abc import Callable
from typing import Any

from breaker.v1 import breaker_pb2 as pb
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from breaker_svc.domain import Breaker, BreakerConfig, BreakerState, Metrics, WindowType
from breaker_svc.domain.config import PUBLIC_NAMES
from breaker_svc.hub import HeartbeatItem, SnapshotItem, TransitionItem, WatchItem
from breaker_svc.store import Event
from breaker_svc.usecases import Outcome
from services.errors import InvalidArgument
from services.protoconv import ProtoEnum, duration, seconds
from services.validation import shown
from services.watch import BREAKER_STATE

WINDOW_TYPE = ProtoEnum(pb.SlidingWindowType, WindowType, "SLIDING_WINDOW_TYPE_")


# --- enums ------------------------------------------------------------------------------------


def success_from_proto(result: int) -> bool | None:
    return {pb.CALL_RESULT_SUCCESS: True, pb.CALL_RESULT_FAILURE: False}.get(result)


# --- times ------------------------------------------------------------------------------------


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(round(seconds * 1_000_000))  # float epoch seconds hold microseconds, not nanos
    return ts


# --- requests -> domain -----------------------------------------------------------------------


def outcome_from_proto(request: pb.RecordOutcomeRequest | pb.RecordOutcomesRequest) -> Outcome:
    duration_s = seconds(request.duration, "duration") if request.HasField("duration") else None
    return Outcome(request.dependency, success_from_proto(request.result), duration_s)


def _seconds_of(field: str) -> Callable[[pb.BreakerConfig], float]:
    return lambda config: seconds(getattr(config, field), field)


def _plain(field: str) -> Callable[[pb.BreakerConfig], Any]:
    return lambda config: getattr(config, field)


def _window_type(config: pb.BreakerConfig) -> WindowType:
    """Read only when the field is named in update_mask (or set): UNSPECIFIED is then no value."""
    member = WINDOW_TYPE.from_proto(config.sliding_window_type, "sliding_window_type")
    if member is None:
        raise InvalidArgument(
            "sliding_window_type is named in update_mask but not set: set it to"
            " SLIDING_WINDOW_TYPE_COUNT_BASED or SLIDING_WINDOW_TYPE_TIME_BASED, or leave it out of the mask"
        )
    return member


# proto field -> reader of its value as the domain holds it.
_CONFIG_READERS: dict[str, Callable[[pb.BreakerConfig], Any]] = {
    "sliding_window_type": _window_type,
    "sliding_window_size": _plain("sliding_window_size"),
    "minimum_calls": _plain("minimum_calls"),
    "failure_rate_threshold": _plain("failure_rate_threshold"),
    "slow_call_rate_threshold": _plain("slow_call_rate_threshold"),
    "slow_call_duration_threshold": _seconds_of("slow_call_duration_threshold"),
    "consecutive_failure_threshold": _plain("consecutive_failure_threshold"),
    "open_wait_duration": _seconds_of("open_wait_duration"),
    "open_wait_multiplier": _plain("open_wait_multiplier"),
    "max_open_wait_duration": _seconds_of("max_open_wait_duration"),
    "max_half_open_wait_duration": _seconds_of("max_half_open_wait_duration"),
    "half_open_permitted_calls": _plain("half_open_permitted_calls"),
}
_DOMAIN_FIELD = {public: domain_field for domain_field, public in PUBLIC_NAMES.items()}


def config_updates_from_proto(config: pb.BreakerConfig, mask_paths: list[str]) -> dict[str, Any]:
    """BreakerConfig field -> new value: the masked fields, or without a mask the non-zero ones."""
    if mask_paths:
        names = []
        for path in mask_paths:
            name = path.removeprefix("config.")
            if name not in _CONFIG_READERS:
                raise InvalidArgument(f"update_mask path {shown(path)} is not a BreakerConfig field")
            names.append(name)
    else:
        names = [name for name in _CONFIG_READERS if _is_set(config, name)]
    return {_DOMAIN_FIELD[name]: _CONFIG_READERS[name](config) for name in names}


def _is_set(config: pb.BreakerConfig, name: str) -> bool:
    value = getattr(config, name)
    if isinstance(value, Duration):
        return config.HasField(name) and (value.seconds != 0 or value.nanos != 0)
    return value != 0


# --- domain -> responses ----------------------------------------------------------------------


def config_to_proto(config: BreakerConfig) -> pb.BreakerConfig:
    return pb.BreakerConfig(
        sliding_window_type=WINDOW_TYPE.to_proto(config.window_type),
        sliding_window_size=config.window_size,
        minimum_calls=config.minimum_calls,
        failure_rate_threshold=config.failure_rate_threshold,
        slow_call_rate_threshold=config.slow_call_rate_threshold,
        slow_call_duration_threshold=duration(config.slow_call_duration_threshold_s),
        consecutive_failure_threshold=config.consecutive_failure_threshold,
        open_wait_duration=duration(config.open_wait_s),
        open_wait_multiplier=config.open_wait_multiplier,
        max_open_wait_duration=duration(config.max_open_wait_s),
        max_half_open_wait_duration=duration(config.max_half_open_wait_s),
        half_open_permitted_calls=config.half_open_permitted_calls,
    )


def metrics_to_proto(m: Metrics) -> pb.BreakerMetrics:
    return pb.BreakerMetrics(
        calls=m.calls,
        failed_calls=m.failed_calls,
        slow_calls=m.slow_calls,
        failure_rate=m.failure_rate,
        slow_call_rate=m.slow_call_rate,
        consecutive_failures=m.consecutive_failures,
    )


def breaker_to_proto(b: Breaker, now: float) -> pb.Breaker:
    message = pb.Breaker(
        dependency=b.dependency,
        state=BREAKER_STATE.to_proto(b.state),
        config=config_to_proto(b.config),
        metrics=metrics_to_proto(b.metrics(now)),
        revision=b.revision,
        state_change_time=timestamp(b.state_changed_at),
        half_open_permits_remaining=b.permits_remaining if b.state is BreakerState.HALF_OPEN else 0,
        consecutive_openings=b.consecutive_openings,
        reason=b.reason,
    )
    if b.state is BreakerState.OPEN and b.open_until is not None:
        message.open_until_time.CopyFrom(timestamp(b.open_until))
    if b.state is BreakerState.HALF_OPEN and b.timer_due_at is not None:
        message.half_open_deadline_time.CopyFrom(timestamp(b.timer_due_at))
    return message


def transition_to_proto(event: Event) -> pb.Transition:
    change = event.change
    return pb.Transition(
        revision=event.revision,
        dependency=change.dependency,
        from_state=BREAKER_STATE.to_proto(change.from_state),
        to_state=BREAKER_STATE.to_proto(change.to_state),
        reason=change.reason,
        metrics=metrics_to_proto(change.metrics),
        time=timestamp(change.at),
        half_open_permitted_calls=change.half_open_permitted_calls,
    )


def watch_item_to_proto(item: WatchItem) -> pb.WatchTransitionsResponse:
    if isinstance(item, TransitionItem):
        return pb.WatchTransitionsResponse(transition=transition_to_proto(item.event))
    if isinstance(item, SnapshotItem):
        breakers = [breaker_to_proto(b, item.now) for b in item.breakers]
        return pb.WatchTransitionsResponse(
            snapshot=pb.Snapshot(revision=item.revision, breakers=breakers, reset=item.reset, epoch=item.epoch)
        )
    if isinstance(item, HeartbeatItem):
        return pb.WatchTransitionsResponse(
            heartbeat=pb.Heartbeat(revision=item.revision, time=timestamp(item.at), epoch=item.epoch)
        )
    raise TypeError(f"not a watch item: {item!r}")
