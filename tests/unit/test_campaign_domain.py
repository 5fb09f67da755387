"""The campaign's pure rules: the transition table, exhaustively, and the hold rule."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign_svc import domain
from campaign_svc.domain import BREAKER_HOLDS, TRANSITIONS, Campaign, CampaignStatus, Hold, HoldKind
from services.breaker_state import BreakerState
from services.errors import FailedPrecondition

S = CampaignStatus
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=1)

ALLOWED = {
    (S.CREATED, S.RUNNING),
    (S.CREATED, S.FAILED),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.PAUSED, S.RUNNING),
    (S.PAUSED, S.FAILED),
}
PAIRS = [(a, b) for a in S for b in S]
B = BreakerState
# The breaker states in which a campaign may run: closed ones only, never a trial.
RUNS_WHEN = {B.CLOSED, B.FORCED_CLOSED}


def campaign(status: CampaignStatus = S.CREATED, holds: tuple[Hold, ...] = (), deps=("openai", "perplexity")) -> Campaign:
    return Campaign("c1", "name", "", deps, status, holds, 3, NOW, NOW)


def manual(reason: str = "operator") -> Hold:
    return Hold(HoldKind.MANUAL, reason=reason, created_at=NOW)


def breaker(dependency: str) -> Hold:
    return Hold(HoldKind.BREAKER, dependency, 7, created_at=NOW)


def test_status_values_are_the_lowercase_names() -> None:
    assert [s.value for s in S] == ["created", "running", "paused", "completed", "failed"]
    assert all(s.value == s.name.lower() for s in S)


@pytest.mark.parametrize(("from_status", "to_status"), PAIRS, ids=[f"{a.value}->{b.value}" for a, b in PAIRS])
def test_every_pair_of_statuses_is_allowed_exactly_when_the_table_says_so(from_status, to_status) -> None:
    if (from_status, to_status) in ALLOWED:
        domain.check_transition(from_status, to_status)
        assert to_status in TRANSITIONS[from_status]
    else:
        with pytest.raises(FailedPrecondition) as refused:
            domain.check_transition(from_status, to_status)
        assert refused.value.message == f"cannot go from {from_status.value} to {to_status.value}"


def test_the_table_covers_every_status_and_final_statuses_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(S)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED
    assert TRANSITIONS[S.COMPLETED] == TRANSITIONS[S.FAILED] == frozenset()


def test_completed_cannot_run_again_and_says_so() -> None:
    with pytest.raises(FailedPrecondition, match="cannot go from completed to running"):
        domain.start(campaign(S.COMPLETED), {}, LATER)


@given(st.sampled_from(list(S)), st.lists(st.sampled_from([manual(), breaker("openai"), breaker("perplexity")]), max_size=3))
def test_status_follows_from_holds(status: CampaignStatus, holds: list[Hold]) -> None:
    result = domain.status_for_holds(status, holds)
    if status in (S.RUNNING, S.PAUSED):
        assert result is (S.PAUSED if holds else S.RUNNING)
    else:
        assert result is status


@pytest.mark.parametrize("status", [S.RUNNING, S.PAUSED, S.COMPLETED, S.FAILED])
def test_only_a_created_campaign_starts(status: CampaignStatus) -> None:
    with pytest.raises(FailedPrecondition) as refused:
        domain.start(campaign(status, (manual(),) if status is S.PAUSED else ()), {}, LATER)
    expected = "campaign is paused: only a created campaign starts" if status is S.PAUSED else f"cannot go from {status.value} to running"
    assert refused.value.message.startswith(expected)


def test_a_start_is_refused_naming_the_open_breakers_and_otherwise_runs() -> None:
    with pytest.raises(FailedPrecondition, match="dependencies with open breakers: openai, perplexity"):
        domain.start(campaign(), {"perplexity": B.OPEN, "openai": B.FORCED_OPEN}, LATER)
    started = domain.start(campaign(), {}, LATER)
    assert (started.status, started.version, started.started_at, started.updated_at) == (S.RUNNING, 4, LATER, LATER)


def test_pausing_by_hand_adds_one_manual_hold_and_repeating_it_changes_nothing() -> None:
    paused = domain.pause(campaign(S.RUNNING), "maintenance", LATER)
    assert paused.status is S.PAUSED and paused.manual_hold.reason == "maintenance"
    assert paused.version == 4
    assert domain.pause(paused, "again", LATER) is paused
    assert paused.status_message == "paused: paused by hand: maintenance"


def test_a_breaker_paused_campaign_can_also_be_paused_by_hand() -> None:
    held = campaign(S.PAUSED, (breaker("perplexity"),))
    paused = domain.pause(held, "why", LATER)
    assert paused.status is S.PAUSED and len(paused.holds) == 2
    assert paused.status_message == "paused: breaker open for perplexity; paused by hand: why"


@pytest.mark.parametrize("status", [S.CREATED, S.COMPLETED, S.FAILED])
def test_only_running_or_paused_campaigns_can_be_paused(status: CampaignStatus) -> None:
    with pytest.raises(FailedPrecondition, match=f"cannot go from {status.value} to paused"):
        domain.pause(campaign(status), "why", LATER)


def test_resuming_removes_the_manual_hold_but_is_refused_while_a_dependency_is_open() -> None:
    paused = campaign(S.PAUSED, (manual(),))
    with pytest.raises(FailedPrecondition, match="dependencies with open breakers: perplexity"):
        domain.resume(paused, {"perplexity": B.OPEN}, LATER)
    resumed = domain.resume(paused, {}, LATER)
    assert resumed.status is S.RUNNING and resumed.holds == ()


def test_resuming_a_campaign_that_was_not_paused_by_hand_is_refused() -> None:
    with pytest.raises(FailedPrecondition, match="not paused by hand"):
        domain.resume(campaign(S.PAUSED, (breaker("openai"),)), {}, LATER)
    with pytest.raises(FailedPrecondition, match="cannot go from running to running"):
        domain.resume(campaign(S.RUNNING), {}, LATER)


def test_a_breaker_hold_pauses_a_running_campaign_and_its_release_runs_it_again() -> None:
    held = domain.add_breaker_hold(campaign(S.RUNNING), "perplexity", 9, LATER)
    assert held.status is S.PAUSED and held.holds[0].revision == 9
    assert domain.add_breaker_hold(held, "perplexity", 10, LATER) is held  # replay: no change
    released = domain.remove_breaker_hold(held, "perplexity", LATER)
    assert released.status is S.RUNNING and released.holds == ()
    assert domain.remove_breaker_hold(released, "perplexity", LATER) is released


def test_a_breaker_closing_never_resumes_a_campaign_paused_by_hand() -> None:
    held = domain.add_breaker_hold(domain.pause(campaign(S.RUNNING), "op", NOW), "openai", 3, LATER)
    released = domain.remove_breaker_hold(held, "openai", LATER)
    assert released.status is S.PAUSED and released.holds == (held.manual_hold,)


def test_breaker_holds_ignore_other_dependencies_and_campaigns_not_running() -> None:
    assert domain.add_breaker_hold(campaign(S.RUNNING), "apollo", 1, LATER).status is S.RUNNING
    for status in (S.CREATED, S.COMPLETED, S.FAILED):
        assert domain.add_breaker_hold(campaign(status), "openai", 1, LATER).holds == ()


def test_failing_clears_the_holds_and_keeps_the_reason() -> None:
    failed = domain.fail(campaign(S.PAUSED, (manual(), breaker("openai"))), "bad list", LATER)
    assert (failed.status, failed.holds, failed.failed_at) == (S.FAILED, (), LATER)
    assert failed.status_message == "failed: bad list"


def test_the_breaker_rule_covers_every_state_and_lets_campaigns_run_only_when_closed() -> None:
    assert set(BREAKER_HOLDS) == set(B)
    assert {state for state, holds in BREAKER_HOLDS.items() if not holds} == RUNS_WHEN


@pytest.mark.parametrize("state", list(B), ids=[s.value for s in B])
def test_start_and_resume_are_refused_in_every_state_but_closed_naming_the_dependency(state: BreakerState) -> None:
    blocking = domain.holding({"perplexity": state, "openai": B.CLOSED})
    paused = campaign(S.PAUSED, (manual(),))
    if state in RUNS_WHEN:
        assert blocking == {}
        assert domain.start(campaign(), blocking, LATER).status is S.RUNNING
        assert domain.resume(paused, blocking, LATER).status is S.RUNNING
        return
    kind = "half-open breakers (on trial)" if state is B.HALF_OPEN else "open breakers"
    for refused_call in (lambda: domain.start(campaign(), blocking, LATER), lambda: domain.resume(paused, blocking, LATER)):
        with pytest.raises(FailedPrecondition) as refused:
            refused_call()
        assert refused.value.message == f"dependencies with {kind}: perplexity"


def test_a_refusal_names_open_and_half_open_dependencies_apart() -> None:
    blocking = domain.holding({"perplexity": B.HALF_OPEN, "openai": B.OPEN, "apollo": B.FORCED_OPEN, "instantly": B.CLOSED})
    with pytest.raises(FailedPrecondition) as refused:
        domain.start(campaign(), blocking, LATER)
    assert refused.value.message == (
        "dependencies with open breakers: apollo, openai; dependencies with half-open breakers (on trial): perplexity"
    )
