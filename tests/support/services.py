"""The three services wired together in this process, each on its own port with a real channel,
and generic calls that name a method by its descriptor (for tests that sweep every RPC)."""

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from breaker.v1 import breaker_pb2
from campaign.v1 import campaign_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from job.v1 import job_pb2

from breaker_svc.store import BreakerStore
from campaign_svc.app import CampaignApp
from tests.support import breaker as breaker_support
from tests.support import campaign as campaign_support
from tests.support.job import running_jobs

SERVICES: tuple[ServiceDescriptor, ...] = (
    breaker_pb2.DESCRIPTOR.services_by_name["BreakerService"],
    job_pb2.DESCRIPTOR.services_by_name["JobService"],
    campaign_pb2.DESCRIPTOR.services_by_name["CampaignService"],
)
EVERY_METHOD: tuple[MethodDescriptor, ...] = tuple(m for service in SERVICES for m in service.methods)


@dataclass
class Services:
    targets: dict[str, str]  # service full name -> its address
    channels: dict[str, grpc.aio.Channel]  # service full name -> channel to it

    def channel(self, method: MethodDescriptor) -> grpc.aio.Channel:
        return self.channels[method.containing_service.full_name]


@asynccontextmanager
async def three_services(breaker_store: BreakerStore, job_database: str, campaign_database: str) -> AsyncIterator[Services]:
    """breaker_svc, job_svc (following the breaker and forwarding outcomes to it) and
    campaign_svc (following the breaker, commanding job_svc), as in production."""
    async with breaker_support.running_app(breaker_store) as (breaker_app, _):
        breaker_target = f"127.0.0.1:{breaker_app.port}"
        async with running_jobs(job_database, background=True, breaker_target=breaker_target) as jobs:
            job_target = f"127.0.0.1:{jobs.app.port}"
            campaigns = CampaignApp(campaign_support.settings(campaign_database, breaker_target, job_target))
            await campaigns.start()
            try:
                targets = dict(zip((s.full_name for s in SERVICES), (breaker_target, job_target, f"127.0.0.1:{campaigns.port}")))
                channels = {name: grpc.aio.insecure_channel(target) for name, target in targets.items()}
                try:
                    yield Services(targets, channels)
                finally:
                    for channel in channels.values():
                        await channel.close()
            finally:
                await campaigns.stop()


def path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def request_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.input_type)


def response_class(method: MethodDescriptor) -> type[Message]:
    return GetMessageClass(method.output_type)


def _identity(raw: bytes) -> bytes:
    return raw


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    details: str
    # The server ended a client stream before taking every message. grpc's client then reports
    # its own INTERNAL ("Internal error from Core") instead of the server's status.
    cut_short: bool = False


async def call_raw(channel: grpc.aio.Channel, method: MethodDescriptor, messages: Iterable[bytes], timeout_s: float = 10.0) -> Answer:
    """Sends encoded request messages as they are (so they need not decode) to any kind of
    method; a response stream (which may run for ever) is read up to its first message."""
    messages = list(messages)
    try:
        if method.client_streaming:
            make = channel.stream_stream if method.server_streaming else channel.stream_unary
            rpc = make(path(method), _identity, _identity)(timeout=timeout_s)
            if not await _wrote_all(rpc, messages):
                return Answer(await rpc.code(), await rpc.details() or "", cut_short=True)
        else:
            make = channel.unary_stream if method.server_streaming else channel.unary_unary
            rpc = make(path(method), _identity, _identity)(messages[0], timeout=timeout_s)
        if not method.server_streaming:
            await rpc
        else:
            try:
                if await rpc.read() is grpc.aio.EOF:
                    return Answer(await rpc.code(), await rpc.details() or "")
            finally:
                rpc.cancel()
    except grpc.aio.AioRpcError as error:
        return Answer(error.code(), error.details() or "")
    return Answer(grpc.StatusCode.OK, "")


async def _wrote_all(rpc: grpc.aio.Call, messages: list[bytes]) -> bool:
    """Writes every message and closes the request stream; False when the call ended first."""
    try:
        for message in messages:
            await rpc.write(message)
        await rpc.done_writing()
    except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
        return False
    return True


async def call(channel: grpc.aio.Channel, method: MethodDescriptor, requests: Iterable[Message], timeout_s: float = 10.0) -> Answer:
    return await call_raw(channel, method, [r.SerializeToString() for r in requests], timeout_s)
