import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_FORCED_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_FORCED_CLOSED: _ClassVar[BreakerState]

class CallResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_RESULT_UNSPECIFIED: _ClassVar[CallResult]
    CALL_RESULT_SUCCESS: _ClassVar[CallResult]
    CALL_RESULT_FAILURE: _ClassVar[CallResult]

class SlidingWindowType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SLIDING_WINDOW_TYPE_UNSPECIFIED: _ClassVar[SlidingWindowType]
    SLIDING_WINDOW_TYPE_COUNT_BASED: _ClassVar[SlidingWindowType]
    SLIDING_WINDOW_TYPE_TIME_BASED: _ClassVar[SlidingWindowType]
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState
BREAKER_STATE_FORCED_OPEN: BreakerState
BREAKER_STATE_FORCED_CLOSED: BreakerState
CALL_RESULT_UNSPECIFIED: CallResult
CALL_RESULT_SUCCESS: CallResult
CALL_RESULT_FAILURE: CallResult
SLIDING_WINDOW_TYPE_UNSPECIFIED: SlidingWindowType
SLIDING_WINDOW_TYPE_COUNT_BASED: SlidingWindowType
SLIDING_WINDOW_TYPE_TIME_BASED: SlidingWindowType

class BreakerConfig(_message.Message):
    __slots__ = ("sliding_window_type", "sliding_window_size", "minimum_calls", "failure_rate_threshold", "slow_call_rate_threshold", "slow_call_duration_threshold", "consecutive_failure_threshold", "open_wait_duration", "open_wait_multiplier", "max_open_wait_duration", "half_open_permitted_calls", "max_half_open_wait_duration")
    SLIDING_WINDOW_TYPE_FIELD_NUMBER: _ClassVar[int]
    SLIDING_WINDOW_SIZE_FIELD_NUMBER: _ClassVar[int]
    MINIMUM_CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SLOW_CALL_RATE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SLOW_CALL_DURATION_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OPEN_WAIT_DURATION_FIELD_NUMBER: _ClassVar[int]
    OPEN_WAIT_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    MAX_OPEN_WAIT_DURATION_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_PERMITTED_CALLS_FIELD_NUMBER: _ClassVar[int]
    MAX_HALF_OPEN_WAIT_DURATION_FIELD_NUMBER: _ClassVar[int]
    sliding_window_type: SlidingWindowType
    sliding_window_size: int
    minimum_calls: int
    failure_rate_threshold: float
    slow_call_rate_threshold: float
    slow_call_duration_threshold: _duration_pb2.Duration
    consecutive_failure_threshold: int
    open_wait_duration: _duration_pb2.Duration
    open_wait_multiplier: float
    max_open_wait_duration: _duration_pb2.Duration
    half_open_permitted_calls: int
    max_half_open_wait_duration: _duration_pb2.Duration
    def __init__(self, sliding_window_type: _Optional[_Union[SlidingWindowType, str]] = ..., sliding_window_size: _Optional[int] = ..., minimum_calls: _Optional[int] = ..., failure_rate_threshold: _Optional[float] = ..., slow_call_rate_threshold: _Optional[float] = ..., slow_call_duration_threshold: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., consecutive_failure_threshold: _Optional[int] = ..., open_wait_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., open_wait_multiplier: _Optional[float] = ..., max_open_wait_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., half_open_permitted_calls: _Optional[int] = ..., max_half_open_wait_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class BreakerMetrics(_message.Message):
    __slots__ = ("calls", "failed_calls", "slow_calls", "failure_rate", "slow_call_rate", "consecutive_failures")
    CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILED_CALLS_FIELD_NUMBER: _ClassVar[int]
    SLOW_CALLS_FIELD_NUMBER: _ClassVar[int]
    FAILURE_RATE_FIELD_NUMBER: _ClassVar[int]
    SLOW_CALL_RATE_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    calls: int
    failed_calls: int
    slow_calls: int
    failure_rate: float
    slow_call_rate: float
    consecutive_failures: int
    def __init__(self, calls: _Optional[int] = ..., failed_calls: _Optional[int] = ..., slow_calls: _Optional[int] = ..., failure_rate: _Optional[float] = ..., slow_call_rate: _Optional[float] = ..., consecutive_failures: _Optional[int] = ...) -> None: ...

class Breaker(_message.Message):
    __slots__ = ("dependency", "state", "config", "metrics", "revision", "state_change_time", "open_until_time", "half_open_permits_remaining", "consecutive_openings", "reason", "half_open_deadline_time")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGE_TIME_FIELD_NUMBER: _ClassVar[int]
    OPEN_UNTIL_TIME_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_PERMITS_REMAINING_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_OPENINGS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_DEADLINE_TIME_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    state: BreakerState
    config: BreakerConfig
    metrics: BreakerMetrics
    revision: int
    state_change_time: _timestamp_pb2.Timestamp
    open_until_time: _timestamp_pb2.Timestamp
    half_open_permits_remaining: int
    consecutive_openings: int
    reason: str
    half_open_deadline_time: _timestamp_pb2.Timestamp
    def __init__(self, dependency: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ..., config: _Optional[_Union[BreakerConfig, _Mapping]] = ..., metrics: _Optional[_Union[BreakerMetrics, _Mapping]] = ..., revision: _Optional[int] = ..., state_change_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., open_until_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., half_open_permits_remaining: _Optional[int] = ..., consecutive_openings: _Optional[int] = ..., reason: _Optional[str] = ..., half_open_deadline_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordOutcomeRequest(_message.Message):
    __slots__ = ("dependency", "result", "duration")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    result: CallResult
    duration: _duration_pb2.Duration
    def __init__(self, dependency: _Optional[str] = ..., result: _Optional[_Union[CallResult, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RecordOutcomeResponse(_message.Message):
    __slots__ = ("breaker", "transition")
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    transition: Transition
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ..., transition: _Optional[_Union[Transition, _Mapping]] = ...) -> None: ...

class RecordOutcomesRequest(_message.Message):
    __slots__ = ("dependency", "result", "duration", "batch_id")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    result: CallResult
    duration: _duration_pb2.Duration
    batch_id: str
    def __init__(self, dependency: _Optional[str] = ..., result: _Optional[_Union[CallResult, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., batch_id: _Optional[str] = ...) -> None: ...

class RecordOutcomesResponse(_message.Message):
    __slots__ = ("recorded_count", "breakers", "already_recorded_count")
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    recorded_count: int
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    already_recorded_count: int
    def __init__(self, recorded_count: _Optional[int] = ..., breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ..., already_recorded_count: _Optional[int] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("dependency", "result", "duration")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    result: CallResult
    duration: _duration_pb2.Duration
    def __init__(self, dependency: _Optional[str] = ..., result: _Optional[_Union[CallResult, str]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RecordOutcomeBatchesRequest(_message.Message):
    __slots__ = ("batch_id", "outcomes")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    outcomes: _containers.RepeatedCompositeFieldContainer[Outcome]
    def __init__(self, batch_id: _Optional[str] = ..., outcomes: _Optional[_Iterable[_Union[Outcome, _Mapping]]] = ...) -> None: ...

class RecordOutcomeBatchesResponse(_message.Message):
    __slots__ = ("batch_id", "recorded_count", "already_recorded_count")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RECORDED_COUNT_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    recorded_count: int
    already_recorded_count: int
    def __init__(self, batch_id: _Optional[str] = ..., recorded_count: _Optional[int] = ..., already_recorded_count: _Optional[int] = ...) -> None: ...

class AcquireRequest(_message.Message):
    __slots__ = ("dependency",)
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    def __init__(self, dependency: _Optional[str] = ...) -> None: ...

class AcquireResponse(_message.Message):
    __slots__ = ("permitted", "state", "retry_after")
    PERMITTED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    permitted: bool
    state: BreakerState
    retry_after: _duration_pb2.Duration
    def __init__(self, permitted: _Optional[bool] = ..., state: _Optional[_Union[BreakerState, str]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetBreakerRequest(_message.Message):
    __slots__ = ("dependency",)
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    def __init__(self, dependency: _Optional[str] = ...) -> None: ...

class GetBreakerResponse(_message.Message):
    __slots__ = ("breaker",)
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ...) -> None: ...

class ListBreakersRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "state")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    state: BreakerState
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., state: _Optional[_Union[BreakerState, str]] = ...) -> None: ...

class ListBreakersResponse(_message.Message):
    __slots__ = ("breakers", "next_page_token")
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    next_page_token: str
    def __init__(self, breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ConfigureBreakerRequest(_message.Message):
    __slots__ = ("dependency", "config", "update_mask")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    config: BreakerConfig
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, dependency: _Optional[str] = ..., config: _Optional[_Union[BreakerConfig, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ConfigureBreakerResponse(_message.Message):
    __slots__ = ("breaker",)
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ...) -> None: ...

class ForceOpenRequest(_message.Message):
    __slots__ = ("dependency", "reason")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    reason: str
    def __init__(self, dependency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForceOpenResponse(_message.Message):
    __slots__ = ("breaker",)
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ...) -> None: ...

class ForceCloseRequest(_message.Message):
    __slots__ = ("dependency", "reason")
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    reason: str
    def __init__(self, dependency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ForceCloseResponse(_message.Message):
    __slots__ = ("breaker",)
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ...) -> None: ...

class ResetBreakerRequest(_message.Message):
    __slots__ = ("dependency",)
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    def __init__(self, dependency: _Optional[str] = ...) -> None: ...

class ResetBreakerResponse(_message.Message):
    __slots__ = ("breaker",)
    BREAKER_FIELD_NUMBER: _ClassVar[int]
    breaker: Breaker
    def __init__(self, breaker: _Optional[_Union[Breaker, _Mapping]] = ...) -> None: ...

class Transition(_message.Message):
    __slots__ = ("revision", "dependency", "from_state", "to_state", "reason", "metrics", "time", "half_open_permitted_calls")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    HALF_OPEN_PERMITTED_CALLS_FIELD_NUMBER: _ClassVar[int]
    revision: int
    dependency: str
    from_state: BreakerState
    to_state: BreakerState
    reason: str
    metrics: BreakerMetrics
    time: _timestamp_pb2.Timestamp
    half_open_permitted_calls: int
    def __init__(self, revision: _Optional[int] = ..., dependency: _Optional[str] = ..., from_state: _Optional[_Union[BreakerState, str]] = ..., to_state: _Optional[_Union[BreakerState, str]] = ..., reason: _Optional[str] = ..., metrics: _Optional[_Union[BreakerMetrics, _Mapping]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., half_open_permitted_calls: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("revision", "breakers", "reset", "epoch")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    BREAKERS_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    revision: int
    breakers: _containers.RepeatedCompositeFieldContainer[Breaker]
    reset: bool
    epoch: str
    def __init__(self, revision: _Optional[int] = ..., breakers: _Optional[_Iterable[_Union[Breaker, _Mapping]]] = ..., reset: _Optional[bool] = ..., epoch: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("revision", "time", "epoch")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    revision: int
    time: _timestamp_pb2.Timestamp
    epoch: str
    def __init__(self, revision: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., epoch: _Optional[str] = ...) -> None: ...

class WatchTransitionsRequest(_message.Message):
    __slots__ = ("from_revision", "dependencies", "epoch")
    FROM_REVISION_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    from_revision: int
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    epoch: str
    def __init__(self, from_revision: _Optional[int] = ..., dependencies: _Optional[_Iterable[str]] = ..., epoch: _Optional[str] = ...) -> None: ...

class WatchTransitionsResponse(_message.Message):
    __slots__ = ("snapshot", "transition", "heartbeat")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    transition: Transition
    heartbeat: Heartbeat
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., transition: _Optional[_Union[Transition, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...
