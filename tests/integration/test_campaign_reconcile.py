"""The breaker subscriber's side: campaigns follow the breaker states they depend on, replays and
resets converge, and a start racing an opening never leaves a running campaign with an open
dependency. States are fed through `BreakerMirror.apply_transition` / `apply_snapshot`, as the
breaker stream does."""

import asyncio

import grpc
from campaign.v1 import campaign_pb2 as pb

from services.watch import BreakerState, Transition
from tests.support.campaign import running_app
from tests.support.polling import eventually

B = BreakerState


async def _statuses(h, ids):  # type: ignore[no-untyped-def]
    return {i: (c.status, c.version, sorted((x.kind, x.dependency) for x in c.holds)) for i in ids for c in [await h.get(i)]}


async def test_an_opening_pauses_exactly_the_campaigns_that_depend_on_it(database_url: str) -> None:
    async with running_app(database_url) as h:
        dependent = await h.running("perplexity", "openai")
        other = await h.running("openai")
        hand = await h.running("perplexity")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=hand.id, reason="hand"))
        created = await h.create("perplexity")
        done = await h.running("perplexity")
        await h.stub.CompleteCampaign(pb.CompleteCampaignRequest(id=done.id))
        ids = [dependent.id, other.id, hand.id, created.id, done.id]
        before = await _statuses(h, ids)

        await h.set_breaker("perplexity", B.OPEN)
        after = await _statuses(h, ids)
        assert after[dependent.id] == (pb.CAMPAIGN_STATUS_PAUSED, before[dependent.id][1] + 1, [(pb.HOLD_KIND_BREAKER, "perplexity")])
        assert after[hand.id][0] == pb.CAMPAIGN_STATUS_PAUSED
        assert after[hand.id][2] == [(pb.HOLD_KIND_BREAKER, "perplexity"), (pb.HOLD_KIND_MANUAL, "")]
        for unchanged in (other.id, created.id, done.id):
            assert after[unchanged] == before[unchanged]
        assert (await h.get(dependent.id)).status_message == "paused: breaker open for perplexity"

        # OPEN -> FORCED_OPEN keeps them held and changes nothing else.
        await h.set_breaker("perplexity", B.FORCED_OPEN)
        assert await _statuses(h, ids) == after

        # A trial (HALF_OPEN) keeps them held: the campaign waits for its verdict.
        await h.set_breaker("perplexity", B.HALF_OPEN)
        assert await _statuses(h, ids) == after
        # The normal recovery path, HALF_OPEN -> CLOSED, releases them (and never the hand-paused one).
        await h.set_breaker("perplexity", B.CLOSED)
        released = await _statuses(h, ids)
        assert released[dependent.id][0] == pb.CAMPAIGN_STATUS_RUNNING
        assert released[hand.id][:3:2] == (pb.CAMPAIGN_STATUS_PAUSED, [(pb.HOLD_KIND_MANUAL, "")])


async def test_a_failed_trial_does_not_flap_the_campaign_and_a_reset_snapshot_in_half_open_holds_it(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("perplexity")
        await h.set_breaker("perplexity", B.OPEN)
        held = await h.get(campaign.id)
        for state in (B.HALF_OPEN, B.OPEN, B.HALF_OPEN):  # a probe fails, the next trial begins
            await h.set_breaker("perplexity", state)
            assert await h.get(campaign.id) == held  # not even its version moved
        other = await h.running("openai")
        await h.snapshot({"openai": B.HALF_OPEN, "perplexity": B.HALF_OPEN})
        assert (await h.get(other.id)).status == pb.CAMPAIGN_STATUS_PAUSED
        await h.snapshot({"openai": B.FORCED_CLOSED, "perplexity": B.CLOSED})
        assert {(await h.get(i)).status for i in (campaign.id, other.id)} == {pb.CAMPAIGN_STATUS_RUNNING}


async def test_a_campaign_stays_paused_until_its_last_open_dependency_closes(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("perplexity", "openai")
        await h.set_breaker("perplexity", B.OPEN)
        await h.set_breaker("openai", B.OPEN)
        await h.set_breaker("perplexity", B.FORCED_CLOSED)
        held = await h.get(campaign.id)
        assert held.status == pb.CAMPAIGN_STATUS_PAUSED and [x.dependency for x in held.holds] == ["openai"]
        await h.set_breaker("openai", B.CLOSED)
        assert (await h.get(campaign.id)).status == pb.CAMPAIGN_STATUS_RUNNING


async def test_replaying_a_transition_twice_changes_nothing(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("perplexity")
        opening = Transition(7, "perplexity", B.CLOSED, B.OPEN, 1, "failure rate")
        await h.app.mirror.apply_transition(opening)
        once = await h.get(campaign.id)
        await h.app.mirror.apply_transition(opening)
        await h.app.mirror.apply_transition(opening)
        assert await h.get(campaign.id) == once
        # An older transition arriving late is ignored too.
        await h.app.mirror.apply_transition(Transition(6, "perplexity", B.OPEN, B.CLOSED, 1, "late"))
        assert await h.get(campaign.id) == once
        assert await h.app.mirror.applied_revision() == 7


async def test_a_reset_snapshot_converges_and_repeating_it_changes_nothing(database_url: str) -> None:
    async with running_app(database_url) as h:
        on_perplexity = await h.running("perplexity")
        on_openai = await h.running("openai")
        await h.set_breaker("perplexity", B.OPEN)  # what the service knew before the reset

        # The reset says: perplexity is gone (so closed), openai is forced open.
        await h.snapshot({"openai": B.FORCED_OPEN, "apollo": B.CLOSED})
        first = await _statuses(h, [on_perplexity.id, on_openai.id])
        assert first[on_perplexity.id][0] == pb.CAMPAIGN_STATUS_RUNNING
        assert first[on_openai.id][0] == pb.CAMPAIGN_STATUS_PAUSED
        status = await h.stub.GetPauseStatus(pb.GetPauseStatusRequest())
        assert {d.dependency for d in status.dependencies} == {"apollo", "openai", "perplexity"}

        await h.snapshot({"openai": B.FORCED_OPEN, "apollo": B.CLOSED}, again=True)
        assert await _statuses(h, [on_perplexity.id, on_openai.id]) == first


async def test_a_start_racing_an_opening_never_leaves_a_running_campaign_with_an_open_dependency(
    postgres_url: str,
) -> None:
    raced_rounds = 0
    async with running_app(postgres_url) as h:
        for round_number in range(8):
            created = await asyncio.gather(*(h.create("perplexity", "openai", name=f"r{round_number}-{i}") for i in range(24)))

            outcomes: list[str] = []

            async def start(campaign_id: str, after_s: float) -> None:
                # Starts keep arriving before, during and after the opening. (Sent all at once, they
                # share-lock the breaker row back to back and the opening waits until all are in.)
                await asyncio.sleep(after_s)
                try:
                    await h.stub.StartCampaign(pb.StartCampaignRequest(id=campaign_id))
                    outcomes.append("started")
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
                    outcomes.append("refused")

            async def open_breaker() -> None:
                # Opens while starts are in flight: once some have answered, at a moment that
                # moves with each round.
                await eventually(lambda: _value(len(outcomes) >= 1 + round_number % 4), interval_s=0.001)
                await h.set_breaker("perplexity", B.OPEN)

            await asyncio.gather(open_breaker(), *(start(c.id, 0.005 * i) for i, c in enumerate(created)))
            # A round where every start answered the same proved nothing (a loaded machine can
            # keep the opening waiting until all starts are in): count those that raced.
            raced_rounds += {"started", "refused"} <= set(outcomes)
            listed = await h.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1000, status=pb.CAMPAIGN_STATUS_RUNNING))
            assert [c.id for c in listed.campaigns if "perplexity" in c.dependencies] == []
            paused = await h.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1000, status=pb.CAMPAIGN_STATUS_PAUSED))
            assert sum(1 for c in paused.campaigns if c.name.startswith(f"r{round_number}-")) == outcomes.count("started")
            await h.set_breaker("perplexity", B.CLOSED)
            listed = await h.stub.ListCampaigns(pb.ListCampaignsRequest(page_size=1000, status=pb.CAMPAIGN_STATUS_PAUSED))
            assert list(listed.campaigns) == []
            if raced_rounds == 3:
                break
    assert raced_rounds == 3, "fewer than 3 rounds had a start racing the opening"


async def _value(value):  # type: ignore[no-untyped-def]
    return value
