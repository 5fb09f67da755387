"""What callers import: typed clients for the services, the breaker guard and the worker.

Depends on grpcio, protobuf and the generated code only.
"""

from services.client.breaker_service import BreakerServiceClient
from services.client.breakers import (
    BreakerClient,
    BreakerOpen,
    BreakerUnavailable,
    OutcomePolicy,
    SyncBreakerClient,
    failed_dependency,
)
from services.client.calls import Caller, ServiceClient
from services.client.campaigns import CampaignClient
from services.client.channel import ClientTLS
from services.client.jobs import JobClient, SyncJobClient, job_request
from services.client.sync import SyncFacade
from services.client.worker import JobContext, Worker

__all__ = [
    "BreakerClient",
    "BreakerOpen",
    "BreakerServiceClient",
    "BreakerUnavailable",
    "Caller",
    "CampaignClient",
    "ClientTLS",
    "JobClient",
    "JobContext",
    "OutcomePolicy",
    "ServiceClient",
    "SyncBreakerClient",
    "SyncFacade",
    "SyncJobClient",
    "Worker",
    "failed_dependency",
    "job_request",
]
