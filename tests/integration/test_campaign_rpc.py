"""Every CampaignService RPC through a real channel to the service in-process, with good and bad
input, on PostgreSQL and on SQLite."""

import asyncio
import uuid

import grpc
import pytest
from breaker.v1 import breaker_pb2
from campaign.v1 import campaign_pb2 as pb

from campaign_svc import metrics
from services.watch import BreakerState
from tests.support.campaign import rpc_error, running_app
from tests.support.polling import eventually

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
S = pb


async def test_a_campaign_is_created_and_read_back(database_url: str) -> None:
    async with running_app(database_url) as h:
        request = pb.CreateCampaignRequest(
            name="Q3 outreach", description="warm leads", dependencies=["openai", "apollo", "openai"]
        )
        created = (await h.stub.CreateCampaign(request)).campaign
        assert uuid.UUID(created.id)
        assert (created.name, created.description, list(created.dependencies)) == ("Q3 outreach", "warm leads", ["apollo", "openai"])
        assert (created.status, created.version, created.status_message) == (S.CAMPAIGN_STATUS_CREATED, 1, "created")
        assert created.HasField("create_time") and not created.HasField("start_time")
        assert await h.get(created.id) == created


async def test_create_works_while_a_dependency_is_open(database_url: str) -> None:
    async with running_app(database_url) as h:
        await h.set_breaker("perplexity", BreakerState.FORCED_OPEN)
        created = await h.create("perplexity")
        assert created.status == S.CAMPAIGN_STATUS_CREATED


async def test_a_repeated_request_id_returns_the_first_campaign_even_when_racing(database_url: str) -> None:
    async with running_app(database_url) as h:
        def request(name: str) -> pb.CreateCampaignRequest:
            return pb.CreateCampaignRequest(request_id="req-1", name=name, dependencies=["openai"])

        results = await asyncio.gather(*(h.stub.CreateCampaign(request(f"n{i}")) for i in range(8)))
        assert len({r.campaign.id for r in results}) == 1
        again = await h.stub.CreateCampaign(request("later"))
        assert again.campaign == results[0].campaign
        listed = await h.stub.ListCampaigns(pb.ListCampaignsRequest())
        assert len(listed.campaigns) == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "dependencies": ["openai"]}, "name is required"),
        ({"name": "   ", "dependencies": ["openai"]}, "name is required"),
        ({"name": "x" * 201, "dependencies": ["openai"]}, "name must be at most 200"),
        ({"name": "n", "description": "d" * 2001, "dependencies": ["openai"]}, "description must be at most 2000"),
        ({"name": "n", "dependencies": []}, "at least one dependency"),
        ({"name": "n", "dependencies": ["OpenAI"]}, "malformed"),
        ({"name": "n", "dependencies": [f"p{i}" for i in range(21)]}, "at most 20"),
        ({"name": "n", "dependencies": ["openai"], "request_id": "r" * 129}, "request_id must be at most 128"),
    ],
)
async def test_create_refuses_bad_input(sqlite_url: str, fields: dict, message: str) -> None:
    async with running_app(sqlite_url) as h:
        error = await rpc_error(h.stub.CreateCampaign(pb.CreateCampaignRequest(**fields)))
        assert error.code() == INVALID and message in error.details()


async def test_ids_must_be_uuids_and_unknown_ids_are_not_found(database_url: str) -> None:
    async with running_app(database_url) as h:
        unknown = str(uuid.uuid4())
        calls = [
            lambda i: h.stub.GetCampaign(pb.GetCampaignRequest(id=i)),
            lambda i: h.stub.StartCampaign(pb.StartCampaignRequest(id=i)),
            lambda i: h.stub.PauseCampaign(pb.PauseCampaignRequest(id=i, reason="r")),
            lambda i: h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=i)),
            lambda i: h.stub.CompleteCampaign(pb.CompleteCampaignRequest(id=i)),
            lambda i: h.stub.FailCampaign(pb.FailCampaignRequest(id=i)),
        ]
        for call in calls:
            assert (await rpc_error(call(""))).code() == INVALID
            assert (await rpc_error(call("not-a-uuid"))).code() == INVALID
            error = await rpc_error(call(unknown))
            assert error.code() == grpc.StatusCode.NOT_FOUND and unknown in error.details()


async def test_list_pages_oldest_first_and_filters_by_status(database_url: str) -> None:
    async with running_app(database_url) as h:
        ids = [(await h.create("openai", name=f"c{i}")).id for i in range(5)]
        for campaign_id in ids[:2]:
            await h.stub.StartCampaign(pb.StartCampaignRequest(id=campaign_id))
        seen, token = [], ""
        while True:
            page = await h.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=2, page_token=token))
            assert len(page.campaigns) <= 2
            seen += [c.id for c in page.campaigns]
            token = page.next_page_token
            if not token:
                break
        assert seen == ids
        running = await h.stub.ListCampaigns(pb.ListCampaignsRequest(status=S.CAMPAIGN_STATUS_RUNNING, page_size=1))
        assert [c.id for c in running.campaigns] == ids[:1] and running.next_page_token
        rest = await h.stub.ListCampaigns(
            pb.ListCampaignsRequest(status=S.CAMPAIGN_STATUS_RUNNING, page_size=1, page_token=running.next_page_token)
        )
        assert [c.id for c in rest.campaigns] == ids[1:2]
        created = await h.stub.ListCampaigns(pb.ListCampaignsRequest(status=S.CAMPAIGN_STATUS_CREATED))
        assert [c.id for c in created.campaigns] == ids[2:]

        bad = [
            pb.ListCampaignsRequest(page_size=-1),
            pb.ListCampaignsRequest(page_token="garbage!"),
            pb.ListCampaignsRequest(page_token=running.next_page_token),  # issued for another filter
            pb.ListCampaignsRequest(status=42),
        ]
        for request in bad:
            assert (await rpc_error(h.stub.ListCampaigns(request))).code() == INVALID


async def test_start_runs_a_created_campaign_once(database_url: str) -> None:
    async with running_app(database_url) as h:
        created = await h.create("openai", "apollo")
        started = (await h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id))).campaign
        assert (started.status, started.version, started.status_message) == (S.CAMPAIGN_STATUS_RUNNING, 2, "running")
        assert started.HasField("start_time")
        error = await rpc_error(h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id)))
        assert error.code() == PRECONDITION and error.details() == "cannot go from running to running"


async def test_start_is_refused_naming_the_open_breakers(database_url: str) -> None:
    async with running_app(database_url) as h:
        await h.set_breaker("perplexity", BreakerState.OPEN)
        await h.set_breaker("openai", BreakerState.FORCED_OPEN)
        await h.set_breaker("apollo", BreakerState.HALF_OPEN)
        created = await h.create("perplexity", "openai", "apollo")
        error = await rpc_error(h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id)))
        assert error.code() == PRECONDITION
        assert error.details() == (
            "dependencies with open breakers: openai, perplexity; dependencies with half-open breakers (on trial): apollo"
        )
        assert (await h.get(created.id)).status == S.CAMPAIGN_STATUS_CREATED


async def test_start_and_resume_fail_safe_when_breaker_svc_goes_silent(database_url: str) -> None:
    async with running_app(database_url, breaker_stale_after_s=1.0) as h:
        running = await h.running("openai")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=running.id, reason="hand"))
        created = await h.create("openai")
        await h.silence_breaker()

        async def stale() -> bool:
            return (await h.stub.GetPauseStatus(pb.GetPauseStatusRequest())).breaker_state_stale

        await eventually(stale)
        for call in (
            h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id)),
            h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=running.id)),
        ):
            error = await rpc_error(call)
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "stale" in error.details()
        assert (await h.get(created.id)).status == S.CAMPAIGN_STATUS_CREATED
        assert (await h.get(running.id)).status == S.CAMPAIGN_STATUS_PAUSED


async def test_start_fails_safe_when_breaker_svc_was_never_heard_from(database_url: str) -> None:
    async with running_app(database_url, breaker=False) as h:
        created = await h.create("openai")
        error = await rpc_error(h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id)))
        assert error.code() == grpc.StatusCode.UNAVAILABLE and "stale" in error.details()
        status = await h.stub.GetPauseStatus(pb.GetPauseStatusRequest())
        assert status.breaker_state_stale and not status.HasField("breaker_contact_time")
        # Everything that does not depend on the breaker states still works.
        failed = await h.stub.FailCampaign(pb.FailCampaignRequest(id=created.id, reason="gave up"))
        assert failed.campaign.status == S.CAMPAIGN_STATUS_FAILED


async def test_pause_and_resume_by_hand_also_pause_and_resume_the_jobs(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("openai")
        paused = (await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=campaign.id, reason="list review"))).campaign
        assert paused.status == S.CAMPAIGN_STATUS_PAUSED and paused.version == 3
        assert [(hold.kind, hold.reason) for hold in paused.holds] == [(pb.HOLD_KIND_MANUAL, "list review")]
        assert paused.status_message == "paused: paused by hand: list review"
        again = (await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=campaign.id, reason="other"))).campaign
        assert again == paused  # already paused by hand: nothing changes, no second job call
        resumed = (await h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=campaign.id))).campaign
        assert (resumed.status, list(resumed.holds), resumed.version) == (S.CAMPAIGN_STATUS_RUNNING, [], 4)
        expected = [("PauseJobs", campaign.id), ("ResumeJobs", campaign.id)]
        assert await eventually(lambda: _value(h.jobs.calls == expected))


async def test_failing_a_campaign_paused_by_hand_releases_its_jobs(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("openai")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=campaign.id, reason="list review"))
        failed = (await h.stub.FailCampaign(pb.FailCampaignRequest(id=campaign.id, reason="gave up"))).campaign
        assert failed.status == S.CAMPAIGN_STATUS_FAILED and list(failed.holds) == []
        expected = [("PauseJobs", campaign.id), ("ResumeJobs", campaign.id)]
        assert await eventually(lambda: _value(h.jobs.calls == expected))


async def test_pause_and_resume_refuse_what_they_cannot_do(database_url: str) -> None:
    async with running_app(database_url) as h:
        created = await h.create("openai", "perplexity")
        error = await rpc_error(h.stub.PauseCampaign(pb.PauseCampaignRequest(id=created.id, reason="r")))
        assert error.code() == PRECONDITION and error.details() == "cannot go from created to paused"
        running = await h.running("openai", "perplexity")
        error = await rpc_error(h.stub.PauseCampaign(pb.PauseCampaignRequest(id=running.id, reason="")))
        assert error.code() == INVALID and "reason" in error.details()
        error = await rpc_error(h.stub.PauseCampaign(pb.PauseCampaignRequest(id=running.id, reason="r" * 501)))
        assert error.code() == INVALID
        error = await rpc_error(h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=running.id)))
        assert error.code() == PRECONDITION

        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=running.id, reason="hand"))
        error = await rpc_error(h.stub.StartCampaign(pb.StartCampaignRequest(id=running.id)))
        assert error.code() == PRECONDITION and "only a created campaign starts" in error.details()
        await h.set_breaker("perplexity", BreakerState.OPEN)
        error = await rpc_error(h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=running.id)))
        assert error.code() == PRECONDITION and error.details() == "dependencies with open breakers: perplexity"
        await h.set_breaker("perplexity", BreakerState.HALF_OPEN)
        error = await rpc_error(h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=running.id)))
        assert error.code() == PRECONDITION
        assert error.details() == "dependencies with half-open breakers (on trial): perplexity"
        # The breaker closing removes its own hold only: the campaign stays paused by hand.
        await h.set_breaker("perplexity", BreakerState.CLOSED)
        still = await h.get(running.id)
        assert still.status == S.CAMPAIGN_STATUS_PAUSED
        assert [hold.kind for hold in still.holds] == [pb.HOLD_KIND_MANUAL]
        resumed = (await h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=running.id))).campaign
        assert resumed.status == S.CAMPAIGN_STATUS_RUNNING


async def test_complete_and_fail_follow_the_transition_table(database_url: str) -> None:
    async with running_app(database_url) as h:
        created = await h.create("openai")
        error = await rpc_error(h.stub.CompleteCampaign(pb.CompleteCampaignRequest(id=created.id)))
        assert error.code() == PRECONDITION and error.details() == "cannot go from created to completed"
        await h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id))
        completed = (await h.stub.CompleteCampaign(pb.CompleteCampaignRequest(id=created.id))).campaign
        assert completed.status == S.CAMPAIGN_STATUS_COMPLETED and completed.HasField("complete_time")
        for call in (
            h.stub.StartCampaign(pb.StartCampaignRequest(id=created.id)),
            h.stub.FailCampaign(pb.FailCampaignRequest(id=created.id)),
            h.stub.PauseCampaign(pb.PauseCampaignRequest(id=created.id, reason="r")),
        ):
            error = await rpc_error(call)
            assert error.code() == PRECONDITION and error.details().startswith("cannot go from completed to")

        paused = await h.running("openai")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=paused.id, reason="hand"))
        failed = (await h.stub.FailCampaign(pb.FailCampaignRequest(id=paused.id, reason="bad data"))).campaign
        assert (failed.status, list(failed.holds), failed.status_message) == (S.CAMPAIGN_STATUS_FAILED, [], "failed: bad data")
        error = await rpc_error(h.stub.FailCampaign(pb.FailCampaignRequest(id=paused.id, reason="r" * 501)))
        assert error.code() == INVALID


async def test_pause_status_shows_breakers_held_and_hand_paused_campaigns(database_url: str) -> None:
    async with running_app(database_url) as h:
        by_breaker = await h.running("perplexity", "openai")
        by_hand = await h.running("apollo")
        untouched = await h.running("openai")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=by_hand.id, reason="hand"))
        revision = await h.set_breaker("perplexity", BreakerState.FORCED_OPEN)
        status = await h.stub.GetPauseStatus(pb.GetPauseStatusRequest())
        states = {d.dependency: (d.breaker_state, list(d.paused_campaign_ids)) for d in status.dependencies}
        assert states == {
            "apollo": (breaker_pb2.BREAKER_STATE_CLOSED, []),
            "openai": (breaker_pb2.BREAKER_STATE_CLOSED, []),
            "perplexity": (breaker_pb2.BREAKER_STATE_FORCED_OPEN, [by_breaker.id]),
        }
        assert list(status.manually_paused_campaign_ids) == [by_hand.id]
        assert status.applied_revision == revision
        assert status.HasField("breaker_contact_time") and not status.breaker_state_stale
        assert (await h.get(untouched.id)).status == S.CAMPAIGN_STATUS_RUNNING


async def test_job_calls_are_retried_in_order_until_job_svc_accepts(sqlite_url: str) -> None:
    async with running_app(sqlite_url) as h:
        h.jobs.refuse_next = 3
        first, second = await h.running("openai"), await h.running("apollo")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=first.id, reason="a"))
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=second.id, reason="b"))
        await h.stub.ResumeCampaign(pb.ResumeCampaignRequest(id=first.id))
        expected = [("PauseJobs", first.id), ("PauseJobs", second.id), ("ResumeJobs", first.id)]
        assert await eventually(lambda: _value(h.jobs.calls == expected))
        assert h.jobs.refuse_next == 0


async def test_a_job_call_that_keeps_failing_is_set_aside_and_the_rows_behind_it_go_on(sqlite_url: str) -> None:
    async with running_app(sqlite_url) as h:
        broken, refused, fine = await h.running("openai"), await h.running("apollo"), await h.running("perplexity")
        h.jobs.failing = {broken.id: grpc.StatusCode.INTERNAL, refused.id: grpc.StatusCode.INVALID_ARGUMENT}
        h.jobs.refuse_next = 2  # job_svc down first: not the rows' fault, so no attempt counts
        for campaign in (broken, refused, fine):
            await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=campaign.id, reason="r"))
        assert await eventually(lambda: _value(h.jobs.calls == [("PauseJobs", fine.id)]))
        # UNAVAILABLE twice, then the five attempts the forwarder allows (MAX_ATTEMPTS); refused once.
        assert h.jobs.tries == [broken.id] * 7 + [refused.id, fine.id]
        async with h.app.engine.connect() as connection:
            assert await h.app.store.pending_job_commands(connection) == 0
            assert await h.app.store.set_aside_job_commands(connection) == 2
        await metrics.refresh(h.app.engine, h.app.store)
        assert metrics.JOB_COMMAND_OUTBOX_SET_ASIDE._value.get() == 2


async def _value(value):  # type: ignore[no-untyped-def]
    return value
