"""Helpers for campaign_svc's tests: the app in-process on port 0 over a real database, and
small stand-ins for its two peers, served over real gRPC channels.

`PeerBreaker` serves only `WatchTransitions`: an empty snapshot at revision 0 to a new
subscriber, then heartbeats, so the service hears from "breaker_svc" and tests drive the
breaker states themselves through `mirror.apply_snapshot` / `apply_transition`.
`PeerJobs` serves `PauseJobs` / `ResumeJobs`, records them and can refuse the first few calls.
"""

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from campaign_svc.app import CampaignApp
from campaign_svc.settings import CampaignSettings
from services.config import ServerSettings
from services.watch import BreakerState, BreakerView, Snapshot, Transition
from tests.support.polling import eventually

PROVIDERS = ("apollo", "millionverifier", "perplexity", "openai", "instantly")


class PeerBreaker(breaker_pb2_grpc.BreakerServiceServicer):
    def __init__(self, heartbeat_s: float = 0.1) -> None:
        self.heartbeat_s = heartbeat_s

    async def WatchTransitions(self, request, context):  # type: ignore[no-untyped-def]
        if not request.HasField("from_revision"):
            yield breaker_pb2.WatchTransitionsResponse(snapshot=breaker_pb2.Snapshot(revision=0))
        while True:
            yield breaker_pb2.WatchTransitionsResponse(heartbeat=breaker_pb2.Heartbeat(revision=0))
            await asyncio.sleep(self.heartbeat_s)


class PeerJobs(job_pb2_grpc.JobServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []  # (method, campaign_id), accepted calls only
        self.refuse_next = 0
        self.failing: dict[str, grpc.StatusCode] = {}  # campaign id -> the code its calls always fail with
        self.tries: list[str] = []  # campaign id of every call received

    async def _accept(self, method: str, campaign_id: str, context: grpc.aio.ServicerContext) -> None:
        self.tries.append(campaign_id)
        if self.refuse_next > 0:
            self.refuse_next -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "job_svc is restarting")
        if campaign_id in self.failing:
            await context.abort(self.failing[campaign_id], "this one never works")
        self.calls.append((method, campaign_id))

    async def PauseJobs(self, request, context):  # type: ignore[no-untyped-def]
        await self._accept("PauseJobs", request.campaign_id, context)
        return job_pb2.PauseJobsResponse(affected_count=0)

    async def ResumeJobs(self, request, context):  # type: ignore[no-untyped-def]
        await self._accept("ResumeJobs", request.campaign_id, context)
        return job_pb2.ResumeJobsResponse()


@asynccontextmanager
async def serving(register: Callable[[grpc.aio.Server], None]) -> AsyncIterator[tuple[str, grpc.aio.Server]]:
    server = grpc.aio.server()
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", server
    finally:
        await server.stop(0)


def settings(database_url: str, breaker_target: str, job_target: str, **overrides: Any) -> CampaignSettings:
    base = CampaignSettings(
        server=ServerSettings("127.0.0.1", 0, 0.5, None, None, "info"),
        database_url=database_url,
        breaker_target=breaker_target,
        job_target=job_target,
        breaker_stale_after_s=30.0,
        job_call_timeout_s=2.0,
        outbox_backoff_max_s=0.2,
        metrics_refresh_s=0.2,
    )
    return dataclasses.replace(base, **overrides)


@dataclasses.dataclass
class Harness:
    app: CampaignApp
    stub: campaign_pb2_grpc.CampaignServiceStub
    jobs: PeerJobs
    breaker_server: grpc.aio.Server
    revision: int = 0

    async def silence_breaker(self) -> None:
        """breaker_svc goes away: its stream ends and nothing more is heard from it."""
        await self.breaker_server.stop(0)

    async def set_breaker(self, dependency: str, state: BreakerState) -> int:
        """Applies the next transition of `dependency` as the breaker stream would."""
        self.revision += 1
        await self.app.mirror.apply_transition(
            Transition(self.revision, dependency, BreakerState.CLOSED, state, 1, "test")
        )
        return self.revision

    async def snapshot(self, states: dict[str, BreakerState], reset: bool = True, again: bool = False) -> None:
        """Applies a snapshot of `states` at the next revision (`again`: at the same one)."""
        self.revision += 0 if again else 1
        views = tuple(BreakerView(d, s, self.revision, 1) for d, s in states.items())
        await self.app.mirror.apply_snapshot(Snapshot(self.revision, views, reset))

    async def create(self, *dependencies: str, name: str = "campaign") -> campaign_pb2.Campaign:
        request = campaign_pb2.CreateCampaignRequest(name=name, dependencies=dependencies)
        return (await self.stub.CreateCampaign(request)).campaign

    async def running(self, *dependencies: str) -> campaign_pb2.Campaign:
        created = await self.create(*dependencies)
        return (await self.stub.StartCampaign(campaign_pb2.StartCampaignRequest(id=created.id))).campaign

    async def get(self, campaign_id: str) -> campaign_pb2.Campaign:
        return (await self.stub.GetCampaign(campaign_pb2.GetCampaignRequest(id=campaign_id))).campaign


@asynccontextmanager
async def running_app(database_url: str, breaker: bool = True, **overrides: Any) -> AsyncIterator[Harness]:
    """campaign_svc in-process on a free port with its peers; waits until it has heard the
    (stand-in) breaker stream, unless `breaker` is False (no breaker_svc at all)."""
    jobs = PeerJobs()
    async with (
        serving(lambda s: breaker_pb2_grpc.add_BreakerServiceServicer_to_server(PeerBreaker(), s)) as (breaker_target, breaker_server),
        serving(lambda s: job_pb2_grpc.add_JobServiceServicer_to_server(jobs, s)) as (job_target, _),
    ):
        target = breaker_target if breaker else "127.0.0.1:1"
        app = CampaignApp(settings(database_url, target, job_target, **overrides))
        port = await app.start()
        try:
            if breaker:
                await eventually(lambda: _heard(app))
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield Harness(app, campaign_pb2_grpc.CampaignServiceStub(channel), jobs, breaker_server)
        finally:
            await app.stop()


async def _heard(app: CampaignApp) -> bool:
    return await app.mirror.applied_revision() is not None and not app.mirror.is_stale(5.0)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Awaits a call that must fail and returns its error."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")
