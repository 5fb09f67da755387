"""The campaign and its rules, pure: no grpc, no sqlalchemy, no clock (callers pass `now`).

A campaign's status moves only along `TRANSITIONS`. While it runs, its status follows from its
holds: RUNNING with a hold is PAUSED, PAUSED with none is RUNNING again. Holds are of two
kinds: one per dependency whose breaker is not closed (`BREAKER_HOLDS`: set and cleared by the
breaker subscriber) and one manual hold (set and cleared by an operator).
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum

from services.breaker_state import BreakerState
from services.errors import FailedPrecondition


class CampaignStatus(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"


class HoldKind(str, Enum):
    BREAKER = "breaker"
    MANUAL = "manual"


S = CampaignStatus

# THE transition table: from each status, the statuses it may move to.
TRANSITIONS: Mapping[CampaignStatus, frozenset[CampaignStatus]] = {
    S.CREATED: frozenset({S.RUNNING, S.FAILED}),
    S.RUNNING: frozenset({S.PAUSED, S.COMPLETED, S.FAILED}),
    S.PAUSED: frozenset({S.RUNNING, S.FAILED}),
    S.COMPLETED: frozenset(),
    S.FAILED: frozenset(),
}

# Statuses whose campaigns the breaker subscriber holds and releases.
HOLDABLE = frozenset({S.RUNNING, S.PAUSED})

# THE breaker rule: for each breaker state, whether it holds the campaigns that need the
# dependency (and refuses their start and resume). A campaign runs only while every dependency
# is closed: a HALF_OPEN trial is the jobs' business (they get its permits), and a campaign
# waits for its verdict, so its status does not flap with each failed probe.
BREAKER_HOLDS: Mapping[BreakerState, bool] = {
    BreakerState.CLOSED: False,
    BreakerState.FORCED_CLOSED: False,
    BreakerState.OPEN: True,
    BreakerState.FORCED_OPEN: True,
    BreakerState.HALF_OPEN: True,
}


def check_transition(from_status: CampaignStatus, to_status: CampaignStatus) -> None:
    if to_status not in TRANSITIONS[from_status]:
        raise FailedPrecondition(f"cannot go from {from_status.value} to {to_status.value}")


@dataclass(frozen=True)
class Hold:
    kind: HoldKind
    dependency: str = ""  # breaker holds
    revision: int = 0  # breaker holds
    reason: str = ""  # manual holds
    created_at: datetime | None = None


def status_for_holds(status: CampaignStatus, holds: Iterable[Hold]) -> CampaignStatus:
    """The hold rule: running with holds is paused, paused without holds is running."""
    held = any(True for _ in holds)
    if status is S.RUNNING and held:
        return S.PAUSED
    if status is S.PAUSED and not held:
        return S.RUNNING
    return status


@dataclass(frozen=True)
class Campaign:
    id: str
    name: str
    description: str
    dependencies: tuple[str, ...]
    status: CampaignStatus
    holds: tuple[Hold, ...]
    version: int
    created_at: datetime
    updated_at: datetime
    request_id: str | None = None
    fail_reason: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    failed_at: datetime | None = None

    @property
    def manual_hold(self) -> Hold | None:
        return next((h for h in self.holds if h.kind is HoldKind.MANUAL), None)

    @property
    def status_message(self) -> str:
        return describe(self)


def new_campaign(
    campaign_id: str, name: str, description: str, dependencies: tuple[str, ...], request_id: str | None, now: datetime
) -> Campaign:
    return Campaign(campaign_id, name, description, dependencies, S.CREATED, (), 1, now, now, request_id)


def blocking_message(blocking: Mapping[str, BreakerState]) -> str:
    """Names the dependencies that refuse a start or resume, open ones first, then half-open."""
    half_open = sorted(d for d, state in blocking.items() if state is BreakerState.HALF_OPEN)
    still_open = sorted(d for d in blocking if d not in half_open)
    parts = []
    if still_open:
        parts.append("dependencies with open breakers: " + ", ".join(still_open))
    if half_open:
        parts.append("dependencies with half-open breakers (on trial): " + ", ".join(half_open))
    return "; ".join(parts)


def holding(states: Mapping[str, BreakerState]) -> dict[str, BreakerState]:
    """Those of `states` (dependency -> breaker state) that hold a campaign."""
    return {dependency: state for dependency, state in states.items() if BREAKER_HOLDS[state]}


def _changed(campaign: Campaign, now: datetime, **changes) -> Campaign:  # type: ignore[no-untyped-def]
    return replace(campaign, version=campaign.version + 1, updated_at=now, **changes)


def _move(campaign: Campaign, to_status: CampaignStatus, now: datetime, **changes) -> Campaign:  # type: ignore[no-untyped-def]
    if to_status is not campaign.status:
        check_transition(campaign.status, to_status)
    return _changed(campaign, now, status=to_status, **changes)


def check_startable(campaign: Campaign) -> None:
    """Only a created campaign starts; a paused one runs again by losing its holds."""
    check_transition(campaign.status, S.RUNNING)
    if campaign.status is not S.CREATED:
        raise FailedPrecondition(
            f"campaign is {campaign.status.value}: only a created campaign starts (ResumeCampaign resumes one paused by hand)"
        )


def start(campaign: Campaign, blocking: Mapping[str, BreakerState], now: datetime) -> Campaign:
    """CREATED -> RUNNING, refused while any dependency's breaker holds (see `holding`)."""
    check_startable(campaign)
    if blocking:
        raise FailedPrecondition(blocking_message(blocking))
    return _move(campaign, S.RUNNING, now, started_at=campaign.started_at or now)


def pause(campaign: Campaign, reason: str, now: datetime) -> Campaign:
    """Adds the manual hold (RUNNING or PAUSED -> PAUSED). Pausing again changes nothing."""
    if campaign.status not in HOLDABLE:
        check_transition(campaign.status, S.PAUSED)
    if campaign.manual_hold is not None:
        return campaign
    holds = (*campaign.holds, Hold(HoldKind.MANUAL, reason=reason, created_at=now))
    return _move(campaign, status_for_holds(campaign.status, holds), now, holds=holds)


def resume(campaign: Campaign, blocking: Mapping[str, BreakerState], now: datetime) -> Campaign:
    """Removes the manual hold; refused while any dependency's breaker holds (see `holding`)."""
    if campaign.manual_hold is None:
        if campaign.status is S.PAUSED:
            raise FailedPrecondition("campaign is not paused by hand: it resumes by itself when its breakers close")
        check_transition(campaign.status, S.RUNNING)
        raise FailedPrecondition(f"campaign is {campaign.status.value}, not paused")
    if blocking:
        raise FailedPrecondition(blocking_message(blocking))
    holds = tuple(h for h in campaign.holds if h.kind is not HoldKind.MANUAL)
    return _move(campaign, status_for_holds(campaign.status, holds), now, holds=holds)


def complete(campaign: Campaign, now: datetime) -> Campaign:
    return _move(campaign, S.COMPLETED, now, holds=(), completed_at=now)


def fail(campaign: Campaign, reason: str, now: datetime) -> Campaign:
    return _move(campaign, S.FAILED, now, holds=(), failed_at=now, fail_reason=reason)


def add_breaker_hold(campaign: Campaign, dependency: str, revision: int, now: datetime) -> Campaign:
    """What the subscriber does to one campaign when `dependency`'s breaker starts to hold (the
    store does the same for all campaigns in one statement)."""
    if campaign.status not in HOLDABLE or dependency not in campaign.dependencies:
        return campaign
    if any(h.kind is HoldKind.BREAKER and h.dependency == dependency for h in campaign.holds):
        return campaign
    holds = (*campaign.holds, Hold(HoldKind.BREAKER, dependency, revision, created_at=now))
    return _move(campaign, status_for_holds(campaign.status, holds), now, holds=holds)


def remove_breaker_hold(campaign: Campaign, dependency: str, now: datetime) -> Campaign:
    """What the subscriber does to one campaign when `dependency` closes."""
    holds = tuple(h for h in campaign.holds if not (h.kind is HoldKind.BREAKER and h.dependency == dependency))
    if holds == campaign.holds:
        return campaign
    return _move(campaign, status_for_holds(campaign.status, holds), now, holds=holds)


def describe(campaign: Campaign) -> str:
    """Why the campaign is in its status, e.g. "paused: breaker open for perplexity"."""
    if campaign.status is S.FAILED:
        return f"failed: {campaign.fail_reason}" if campaign.fail_reason else "failed"
    if campaign.status is not S.PAUSED:
        return campaign.status.value
    reasons = []
    open_dependencies = sorted(h.dependency for h in campaign.holds if h.kind is HoldKind.BREAKER)
    if open_dependencies:
        reasons.append("breaker open for " + ", ".join(open_dependencies))
    manual = campaign.manual_hold
    if manual is not None:
        reasons.append(f"paused by hand: {manual.reason}")
    return "paused: " + "; ".join(reasons)
