import datetime

from breaker.v1 import breaker_pb2 as _breaker_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_PROCESSING: _ClassVar[JobStatus]
    JOB_STATUS_COMPLETED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]
    JOB_STATUS_PAUSED: _ClassVar[JobStatus]

class LeaseResult(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEASE_RESULT_UNSPECIFIED: _ClassVar[LeaseResult]
    LEASE_RESULT_HELD: _ClassVar[LeaseResult]
    LEASE_RESULT_LOST: _ClassVar[LeaseResult]

class HoldKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_KIND_UNSPECIFIED: _ClassVar[HoldKind]
    HOLD_KIND_BREAKER: _ClassVar[HoldKind]
    HOLD_KIND_MANUAL: _ClassVar[HoldKind]
    HOLD_KIND_CAMPAIGN: _ClassVar[HoldKind]

class JobView(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_VIEW_UNSPECIFIED: _ClassVar[JobView]
    JOB_VIEW_FULL: _ClassVar[JobView]
    JOB_VIEW_BASIC: _ClassVar[JobView]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_PROCESSING: JobStatus
JOB_STATUS_COMPLETED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
JOB_STATUS_PAUSED: JobStatus
LEASE_RESULT_UNSPECIFIED: LeaseResult
LEASE_RESULT_HELD: LeaseResult
LEASE_RESULT_LOST: LeaseResult
HOLD_KIND_UNSPECIFIED: HoldKind
HOLD_KIND_BREAKER: HoldKind
HOLD_KIND_MANUAL: HoldKind
HOLD_KIND_CAMPAIGN: HoldKind
JOB_VIEW_UNSPECIFIED: JobView
JOB_VIEW_FULL: JobView
JOB_VIEW_BASIC: JobView

class PauseHold(_message.Message):
    __slots__ = ("kind", "dependency", "revision", "reason", "create_time")
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    kind: HoldKind
    dependency: str
    revision: int
    reason: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[HoldKind, str]] = ..., dependency: _Optional[str] = ..., revision: _Optional[int] = ..., reason: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "campaign_id", "job_type", "dependencies", "payload", "status", "attempts", "max_attempts", "lease_owner", "lease_expire_time", "holds", "pause_reason", "last_error", "run_after_time", "create_time", "update_time", "priority", "result", "lease_expirations")
    ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_OWNER_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    HOLDS_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    RUN_AFTER_TIME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRATIONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    campaign_id: str
    job_type: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    payload: _struct_pb2.Struct
    status: JobStatus
    attempts: int
    max_attempts: int
    lease_owner: str
    lease_expire_time: _timestamp_pb2.Timestamp
    holds: _containers.RepeatedCompositeFieldContainer[PauseHold]
    pause_reason: str
    last_error: str
    run_after_time: _timestamp_pb2.Timestamp
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    priority: int
    result: _struct_pb2.Struct
    lease_expirations: int
    def __init__(self, id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., job_type: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., attempts: _Optional[int] = ..., max_attempts: _Optional[int] = ..., lease_owner: _Optional[str] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., holds: _Optional[_Iterable[_Union[PauseHold, _Mapping]]] = ..., pause_reason: _Optional[str] = ..., last_error: _Optional[str] = ..., run_after_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., priority: _Optional[int] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., lease_expirations: _Optional[int] = ...) -> None: ...

class CreateJobRequest(_message.Message):
    __slots__ = ("request_id", "campaign_id", "job_type", "dependencies", "payload", "max_attempts", "priority", "run_time", "delay")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    RUN_TIME_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    campaign_id: str
    job_type: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    payload: _struct_pb2.Struct
    max_attempts: int
    priority: int
    run_time: _timestamp_pb2.Timestamp
    delay: _duration_pb2.Duration
    def __init__(self, request_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., job_type: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., max_attempts: _Optional[int] = ..., priority: _Optional[int] = ..., run_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class CreateJobsRequest(_message.Message):
    __slots__ = ("jobs", "view")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[CreateJobRequest]
    view: JobView
    def __init__(self, jobs: _Optional[_Iterable[_Union[CreateJobRequest, _Mapping]]] = ..., view: _Optional[_Union[JobView, str]] = ...) -> None: ...

class CreateJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CreateJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "campaign_id", "dependency", "job_type")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: JobStatus
    campaign_id: str
    dependency: str
    job_type: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., campaign_id: _Optional[str] = ..., dependency: _Optional[str] = ..., job_type: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class ClaimJobsRequest(_message.Message):
    __slots__ = ("worker_id", "dependencies", "max_jobs", "lease_duration", "job_type", "wait")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    max_jobs: int
    lease_duration: _duration_pb2.Duration
    job_type: str
    wait: _duration_pb2.Duration
    def __init__(self, worker_id: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., max_jobs: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., job_type: _Optional[str] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ClaimJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class CompleteJobRequest(_message.Message):
    __slots__ = ("id", "worker_id", "call_duration", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CALL_DURATION_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: str
    worker_id: str
    call_duration: _duration_pb2.Duration
    result: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., worker_id: _Optional[str] = ..., call_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class CompleteJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class FailJobRequest(_message.Message):
    __slots__ = ("id", "worker_id", "error", "failed_dependency", "call_duration")
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    CALL_DURATION_FIELD_NUMBER: _ClassVar[int]
    id: str
    worker_id: str
    error: str
    failed_dependency: str
    call_duration: _duration_pb2.Duration
    def __init__(self, id: _Optional[str] = ..., worker_id: _Optional[str] = ..., error: _Optional[str] = ..., failed_dependency: _Optional[str] = ..., call_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FailJobResponse(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class JobCompletion(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: _struct_pb2.Struct
    def __init__(self, result: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class JobFailure(_message.Message):
    __slots__ = ("error", "failed_dependency")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    error: str
    failed_dependency: str
    def __init__(self, error: _Optional[str] = ..., failed_dependency: _Optional[str] = ...) -> None: ...

class JobFinish(_message.Message):
    __slots__ = ("id", "call_duration", "completion", "failure", "outcomes_recorded")
    ID_FIELD_NUMBER: _ClassVar[int]
    CALL_DURATION_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    OUTCOMES_RECORDED_FIELD_NUMBER: _ClassVar[int]
    id: str
    call_duration: _duration_pb2.Duration
    completion: JobCompletion
    failure: JobFailure
    outcomes_recorded: bool
    def __init__(self, id: _Optional[str] = ..., call_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., completion: _Optional[_Union[JobCompletion, _Mapping]] = ..., failure: _Optional[_Union[JobFailure, _Mapping]] = ..., outcomes_recorded: _Optional[bool] = ...) -> None: ...

class NextClaim(_message.Message):
    __slots__ = ("max_jobs", "job_type", "dependencies", "lease_duration")
    MAX_JOBS_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    max_jobs: int
    job_type: str
    dependencies: _containers.RepeatedScalarFieldContainer[str]
    lease_duration: _duration_pb2.Duration
    def __init__(self, max_jobs: _Optional[int] = ..., job_type: _Optional[str] = ..., dependencies: _Optional[_Iterable[str]] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class FinishJobsRequest(_message.Message):
    __slots__ = ("worker_id", "finishes", "next_claim")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    FINISHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CLAIM_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    finishes: _containers.RepeatedCompositeFieldContainer[JobFinish]
    next_claim: NextClaim
    def __init__(self, worker_id: _Optional[str] = ..., finishes: _Optional[_Iterable[_Union[JobFinish, _Mapping]]] = ..., next_claim: _Optional[_Union[NextClaim, _Mapping]] = ...) -> None: ...

class JobFinishResult(_message.Message):
    __slots__ = ("id", "lease_result", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    lease_result: LeaseResult
    status: JobStatus
    def __init__(self, id: _Optional[str] = ..., lease_result: _Optional[_Union[LeaseResult, str]] = ..., status: _Optional[_Union[JobStatus, str]] = ...) -> None: ...

class FinishJobsResponse(_message.Message):
    __slots__ = ("results", "claimed_jobs")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CLAIMED_JOBS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[JobFinishResult]
    claimed_jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, results: _Optional[_Iterable[_Union[JobFinishResult, _Mapping]]] = ..., claimed_jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class RenewLeasesRequest(_message.Message):
    __slots__ = ("worker_id", "ids", "lease_duration")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    lease_duration: _duration_pb2.Duration
    def __init__(self, worker_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class LeaseRenewal(_message.Message):
    __slots__ = ("id", "lease_result", "lease_expire_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_RESULT_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    lease_result: LeaseResult
    lease_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., lease_result: _Optional[_Union[LeaseResult, str]] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewLeasesResponse(_message.Message):
    __slots__ = ("renewals",)
    RENEWALS_FIELD_NUMBER: _ClassVar[int]
    renewals: _containers.RepeatedCompositeFieldContainer[LeaseRenewal]
    def __init__(self, renewals: _Optional[_Iterable[_Union[LeaseRenewal, _Mapping]]] = ...) -> None: ...

class RedriveJobsRequest(_message.Message):
    __slots__ = ("ids", "status", "job_type", "campaign_id")
    IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    status: JobStatus
    job_type: str
    campaign_id: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., job_type: _Optional[str] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class RedriveJobsResponse(_message.Message):
    __slots__ = ("redriven_count",)
    REDRIVEN_COUNT_FIELD_NUMBER: _ClassVar[int]
    redriven_count: int
    def __init__(self, redriven_count: _Optional[int] = ...) -> None: ...

class PauseJobsRequest(_message.Message):
    __slots__ = ("campaign_id", "dependency", "reason")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    dependency: str
    reason: str
    def __init__(self, campaign_id: _Optional[str] = ..., dependency: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PauseJobsResponse(_message.Message):
    __slots__ = ("affected_count",)
    AFFECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    affected_count: int
    def __init__(self, affected_count: _Optional[int] = ...) -> None: ...

class ResumeJobsRequest(_message.Message):
    __slots__ = ("campaign_id", "dependency")
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    campaign_id: str
    dependency: str
    def __init__(self, campaign_id: _Optional[str] = ..., dependency: _Optional[str] = ...) -> None: ...

class ResumeJobsResponse(_message.Message):
    __slots__ = ("affected_count", "resumed_count")
    AFFECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESUMED_COUNT_FIELD_NUMBER: _ClassVar[int]
    affected_count: int
    resumed_count: int
    def __init__(self, affected_count: _Optional[int] = ..., resumed_count: _Optional[int] = ...) -> None: ...

class GetQueueStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DependencyQueueStatus(_message.Message):
    __slots__ = ("dependency", "breaker_state", "counts_by_status")
    class CountsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DEPENDENCY_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    dependency: str
    breaker_state: _breaker_pb2.BreakerState
    counts_by_status: _containers.ScalarMap[str, int]
    def __init__(self, dependency: _Optional[str] = ..., breaker_state: _Optional[_Union[_breaker_pb2.BreakerState, str]] = ..., counts_by_status: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetQueueStatusResponse(_message.Message):
    __slots__ = ("counts_by_status", "dependencies", "blocked_dependencies", "applied_revision", "breaker_contact_time", "breaker_state_stale", "paused_jobs_by_hold")
    class CountsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class PausedJobsByHoldEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    COUNTS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    APPLIED_REVISION_FIELD_NUMBER: _ClassVar[int]
    BREAKER_CONTACT_TIME_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_STALE_FIELD_NUMBER: _ClassVar[int]
    PAUSED_JOBS_BY_HOLD_FIELD_NUMBER: _ClassVar[int]
    counts_by_status: _containers.ScalarMap[str, int]
    dependencies: _containers.RepeatedCompositeFieldContainer[DependencyQueueStatus]
    blocked_dependencies: _containers.RepeatedScalarFieldContainer[str]
    applied_revision: int
    breaker_contact_time: _timestamp_pb2.Timestamp
    breaker_state_stale: bool
    paused_jobs_by_hold: _containers.ScalarMap[str, int]
    def __init__(self, counts_by_status: _Optional[_Mapping[str, int]] = ..., dependencies: _Optional[_Iterable[_Union[DependencyQueueStatus, _Mapping]]] = ..., blocked_dependencies: _Optional[_Iterable[str]] = ..., applied_revision: _Optional[int] = ..., breaker_contact_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., breaker_state_stale: _Optional[bool] = ..., paused_jobs_by_hold: _Optional[_Mapping[str, int]] = ...) -> None: ...
