"""campaign_svc end to end, with real processes: breaker_svc (in-memory), job_svc and
campaign_svc (each on its own PostgreSQL database), talking over gRPC only."""

import asyncio
import time

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2 as pb
from campaign.v1 import campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.batches import in_batches
from tests.support.campaign import PROVIDERS, rpc_error
from tests.support.databases import fresh_postgres_database
from tests.support.polling import eventually

BREAKER_ENV = {"BREAKER_STORE": "memory", "BREAKER_HEARTBEAT_S": "0.5"}


def providers_of(i: int) -> list[str]:
    """The i-th of the 31 non-empty sets of the five providers, round robin."""
    mask = i % 31 + 1
    return [p for bit, p in enumerate(PROVIDERS) if mask >> bit & 1]


async def all_campaigns(stub: campaign_pb2_grpc.CampaignServiceStub) -> list[pb.Campaign]:
    return list((await stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1000))).campaigns)


async def settled(
    campaigns: campaign_pb2_grpc.CampaignServiceStub, breakers: breaker_pb2_grpc.BreakerServiceStub, state: int
) -> bool:
    """True once campaign_svc has applied the breaker's latest transition, which is to `state`."""
    breaker = (await breakers.GetBreaker(breaker_pb2.GetBreakerRequest(dependency="perplexity"))).breaker
    status = await campaigns.GetPauseStatus(pb.GetPauseStatusRequest())
    return breaker.state == state and status.applied_revision >= breaker.revision and not status.breaker_state_stale


def start_campaign_svc(service_process, database_url: str, breaker, job_target: str = "127.0.0.1:9"):  # type: ignore[no-untyped-def]
    env = {"CAMPAIGN_DATABASE_URL": database_url, "BREAKER_TARGET": breaker.address, "JOB_TARGET": job_target}
    return service_process("campaign_svc", env, port_env="CAMPAIGN_PORT")


async def heard_breaker(stub: campaign_pb2_grpc.CampaignServiceStub) -> bool:
    return not (await stub.GetPauseStatus(pb.GetPauseStatusRequest())).breaker_state_stale


async def test_an_open_breaker_pauses_exactly_its_campaigns_and_closing_it_resumes_all_but_the_hand_paused(
    service_process, postgres_url: str
) -> None:
    async with fresh_postgres_database() as jobs_url:
        breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
        jobs = service_process(
            "job_svc", {"JOB_DATABASE_URL": jobs_url, "BREAKER_TARGET": breaker.address}, port_env="JOB_PORT"
        )
        campaign_svc = start_campaign_svc(service_process, postgres_url, breaker, jobs.address)
        async with (
            grpc.aio.insecure_channel(campaign_svc.address) as c_channel,
            grpc.aio.insecure_channel(breaker.address) as b_channel,
            grpc.aio.insecure_channel(jobs.address) as j_channel,
        ):
            campaigns = campaign_pb2_grpc.CampaignServiceStub(c_channel)
            breakers = breaker_pb2_grpc.BreakerServiceStub(b_channel)
            job_stub = job_pb2_grpc.JobServiceStub(j_channel)
            await eventually(lambda: heard_breaker(campaigns))

            created = await in_batches(
                [campaigns.CreateCampaign(pb.CreateCampaignRequest(name=f"c{i}", dependencies=providers_of(i))) for i in range(200)]
            )
            ids = [r.campaign.id for r in created]
            await in_batches([campaigns.StartCampaign(pb.StartCampaignRequest(id=i)) for i in ids])
            assert {c.status for c in await all_campaigns(campaigns)} == {pb.CAMPAIGN_STATUS_RUNNING}
            on_perplexity = {r.campaign.id for r in created if "perplexity" in r.campaign.dependencies}
            assert 0 < len(on_perplexity) < 200

            await breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency="perplexity", reason="e2e"))

            async def paused_set() -> set[str]:
                return {c.id for c in await all_campaigns(campaigns) if c.status == pb.CAMPAIGN_STATUS_PAUSED}

            await eventually(lambda: settled(campaigns, breakers, breaker_pb2.BREAKER_STATE_FORCED_OPEN), timeout_s=15)
            assert await paused_set() == on_perplexity

            # A start of a campaign on perplexity is refused, naming it; so is restarting a paused one.
            late = await campaigns.CreateCampaign(pb.CreateCampaignRequest(name="late", dependencies=["perplexity", "openai"]))
            for campaign_id, message in (
                (late.campaign.id, "dependencies with open breakers: perplexity"),
                (min(on_perplexity), "campaign is paused: only a created campaign starts"),
            ):
                error = await rpc_error(campaigns.StartCampaign(pb.StartCampaignRequest(id=campaign_id)))
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and error.details().startswith(message)

            # One of them is also paused by hand; its jobs are paused through job_svc.
            hand = sorted(on_perplexity)[0]
            job = (await job_stub.CreateJob(job_pb2.CreateJobRequest(campaign_id=hand, job_type="copy", dependencies=["openai"]))).job
            await campaigns.PauseCampaign(pb.PauseCampaignRequest(id=hand, reason="reviewing the list"))

            async def job_status() -> int:
                return (await job_stub.GetJob(job_pb2.GetJobRequest(id=job.id))).job.status

            await eventually(lambda: _equals(job_status(), job_pb2.JOB_STATUS_PAUSED), timeout_s=15)

            await breakers.ForceClose(breaker_pb2.ForceCloseRequest(dependency="perplexity", reason="e2e"))
            await eventually(lambda: settled(campaigns, breakers, breaker_pb2.BREAKER_STATE_FORCED_CLOSED), timeout_s=15)
            assert await paused_set() == {hand}
            held = (await campaigns.GetCampaign(pb.GetCampaignRequest(id=hand))).campaign
            assert [(h.kind, h.reason) for h in held.holds] == [(pb.HOLD_KIND_MANUAL, "reviewing the list")]
            assert (await job_status()) == job_pb2.JOB_STATUS_PAUSED

            # Resuming by hand runs it again, and its jobs with it.
            resumed = (await campaigns.ResumeCampaign(pb.ResumeCampaignRequest(id=hand))).campaign
            assert resumed.status == pb.CAMPAIGN_STATUS_RUNNING
            await eventually(lambda: _equals(job_status(), job_pb2.JOB_STATUS_PENDING), timeout_s=15)
        assert campaign_svc.terminate() == 0


async def test_500_starts_racing_breaker_flips_leave_no_running_campaign_with_an_open_dependency(
    service_process, postgres_url: str
) -> None:
    breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
    campaign_svc = start_campaign_svc(service_process, postgres_url, breaker)
    async with (
        grpc.aio.insecure_channel(campaign_svc.address) as c_channel,
        grpc.aio.insecure_channel(breaker.address) as b_channel,
    ):
        campaigns = campaign_pb2_grpc.CampaignServiceStub(c_channel)
        breakers = breaker_pb2_grpc.BreakerServiceStub(b_channel)
        await eventually(lambda: heard_breaker(campaigns))
        created = await in_batches(
            [
                campaigns.CreateCampaign(pb.CreateCampaignRequest(name=f"c{i}", dependencies=["perplexity", *providers_of(i)]))
                for i in range(500)
            ],
            size=100,
        )
        outcomes: list[str] = []
        started_at = time.monotonic()

        reopened = asyncio.Event()  # campaign_svc has applied the last flip

        async def start(campaign_id: str, late: bool) -> None:
            if late:  # the last starts come after the last flip is applied: refused, on any machine
                await reopened.wait()
            try:
                await campaigns.StartCampaign(pb.StartCampaignRequest(id=campaign_id))
                outcomes.append("started")
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
                outcomes.append("refused")

        async def flip() -> None:
            # Open, close and open again while the starts are in flight (a grpc.aio call starts
            # when it is made, so each is made only when its moment comes).
            for after, call in (
                (100, lambda: breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency="perplexity"))),
                (250, lambda: breakers.ForceClose(breaker_pb2.ForceCloseRequest(dependency="perplexity"))),
                (350, lambda: breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency="perplexity"))),
            ):
                await eventually(lambda after=after: _value(len(outcomes) >= after), timeout_s=30, interval_s=0.001)
                await call()
            await eventually(lambda: settled(campaigns, breakers, breaker_pb2.BREAKER_STATE_FORCED_OPEN), timeout_s=30)
            reopened.set()

        await asyncio.gather(flip(), *(start(r.campaign.id, late=i >= 450) for i, r in enumerate(created)))
        elapsed_s = time.monotonic() - started_at
        assert len(outcomes) == 500
        # Started before the first flip, refused after the last: the starts between raced them.
        assert {"started", "refused"} <= set(outcomes)
        await eventually(lambda: settled(campaigns, breakers, breaker_pb2.BREAKER_STATE_FORCED_OPEN), timeout_s=15)
        everything = await all_campaigns(campaigns)
        assert [c.id for c in everything if c.status == pb.CAMPAIGN_STATUS_RUNNING] == []
        paused = [c for c in everything if c.status == pb.CAMPAIGN_STATUS_PAUSED]
        assert len(paused) == outcomes.count("started")
        assert all([h.dependency for h in c.holds] == ["perplexity"] for c in paused)
        print(f"500 starts in {elapsed_s:.2f}s: {outcomes.count('started')} started, {outcomes.count('refused')} refused")


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected


async def _value(value):  # type: ignore[no-untyped-def]
    return value
