"""The use cases of campaign_svc: validate a command, run it in one transaction, retry on a
concurrent change.

Every change of one campaign reads it, lets the pure domain decide, and writes it back only if
its version is unchanged (`UPDATE ... WHERE id = :id AND version = :v`); a lost race is retried
from a fresh read. Starting and resuming read the breaker states share-locked
(`mirror.locked_states`): the breaker subscriber, which pauses campaigns when a dependency
opens, takes the same rows exclusively first, so the two serialise and a start racing an
opening can never leave a running campaign with an open dependency.
"""

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy.exc
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from campaign_svc import domain
from campaign_svc.domain import Campaign, CampaignStatus
from campaign_svc.store import CampaignStore, JobCommandAction, PauseStatus
from services import pagination, validation
from services.errors import Aborted, InvalidArgument, NotFound, Unavailable
from services.mirror import BreakerMirror
from services.watch import BreakerState, BreakerView

log = structlog.get_logger()

MAX_ATTEMPTS = 8
# PostgreSQL's "try again" codes: serialization failure and deadlock.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Conflict(Exception):
    """A concurrent change won the race for a campaign's version."""


def _is_retryable(error: sqlalchemy.exc.DBAPIError) -> bool:
    cause = error.orig
    codes = {getattr(cause, "sqlstate", None), getattr(getattr(cause, "__cause__", None), "sqlstate", None)}
    return bool(codes & RETRYABLE_SQLSTATES)


@dataclass(frozen=True)
class PauseReport:
    status: PauseStatus
    breaker_contact_time: datetime | None
    breaker_state_stale: bool


class BreakerReconciler:
    """The breaker subscriber's side: `BreakerMirror` calls `on_state_change` in the transaction
    that stores the new breaker state. Set-based, idempotent, level-triggered."""

    def __init__(self, store: CampaignStore, clock: Clock = utc_now) -> None:
        self._store = store
        self._clock = clock

    async def on_state_change(self, connection: AsyncConnection, new: BreakerView, old: BreakerView | None) -> None:
        now = self._clock()
        if domain.BREAKER_HOLDS[new.state]:
            changed = await self._store.hold_for_breaker(connection, new.dependency, new.revision, now)
        else:
            changed = await self._store.release_for_breaker(connection, new.dependency, now)
        log.info(
            "campaigns_reconciled",
            dependency=new.dependency,
            state=new.state.value,
            old_state=old.state.value if old else None,
            revision=new.revision,
            campaigns_changed=changed,
        )


class CampaignUseCases:
    def __init__(
        self,
        engine: AsyncEngine,
        store: CampaignStore,
        mirror: BreakerMirror,
        breaker_stale_after_s: float,
        on_job_command: Callable[[], None] = lambda: None,
        clock: Clock = utc_now,
    ) -> None:
        self._engine = engine
        self._store = store
        self._mirror = mirror
        self._stale_after_s = breaker_stale_after_s
        self._on_job_command = on_job_command
        self._clock = clock

    # -- reading -------------------------------------------------------------------------------

    async def get(self, campaign_id: str) -> Campaign:
        campaign_id = validation.validate_uuid(campaign_id)
        async with self._engine.connect() as connection:
            return await self._existing(connection, campaign_id)

    async def list_page(
        self, status: CampaignStatus | None, page_size: int, page_token: str
    ) -> tuple[list[Campaign], str]:
        limit = pagination.page_size(page_size)
        filters = {"status": status.value if status else ""}
        after = pagination.parse_created_position(pagination.decode_page_token(page_token, filters))
        async with self._engine.connect() as connection:
            found = await self._store.page(connection, status, after, limit + 1)
        if len(found) <= limit:
            return found, ""
        last = found[limit - 1]
        return found[:limit], pagination.encode_page_token(pagination.created_position(last.created_at, last.id), filters)

    async def pause_status(self) -> PauseReport:
        async with self._engine.connect() as connection:
            status = await self._store.pause_status(connection)
        epoch = self._mirror.last_contact_epoch()
        contact = datetime.fromtimestamp(epoch, UTC) if epoch is not None else None
        return PauseReport(status, contact, self._mirror.is_stale(self._stale_after_s))

    # -- creating --------------------------------------------------------------------------------

    async def create(self, name: str, description: str, dependencies: list[str], request_id: str) -> Campaign:
        if not name.strip():
            raise InvalidArgument("name is required")
        name = validation.validate_text(name, "name", min_length=1, max_length=200)
        description = validation.validate_text(description, "description", max_length=2000)
        names = validation.validate_dependency_list(dependencies)
        key = validation.validate_request_id(request_id)
        if key is not None:
            existing = await self._by_request_id(key)
            if existing is not None:
                return existing
        now = self._clock()
        campaign = domain.new_campaign(str(uuid.uuid4()), name, description, names, key, now)
        try:
            async with self._engine.begin() as connection:
                await self._store.insert(connection, campaign)
        except sqlalchemy.exc.IntegrityError:
            # A concurrent create with the same request_id won the unique constraint.
            existing = await self._by_request_id(key) if key is not None else None
            if existing is None:
                raise
            return existing
        log.info("campaign_created", campaign_id=campaign.id, dependencies=list(names))
        return campaign

    async def _by_request_id(self, key: str) -> Campaign | None:
        async with self._engine.connect() as connection:
            return await self._store.get_by_request_id(connection, key)

    # -- changing ----------------------------------------------------------------------------

    async def start(self, campaign_id: str) -> Campaign:
        async def decide(connection: AsyncConnection, campaign: Campaign) -> Campaign:
            domain.check_startable(campaign)  # before taking any lock
            return domain.start(campaign, await self._blocking(connection, campaign), self._clock())

        return await self._change(campaign_id, decide)

    async def pause(self, campaign_id: str, reason: str) -> Campaign:
        reason = validation.validate_text(reason, "reason", min_length=1, max_length=500)

        async def decide(connection: AsyncConnection, campaign: Campaign) -> Campaign:
            paused = domain.pause(campaign, reason, self._clock())
            if paused is not campaign:
                await self._store.enqueue_job_command(connection, campaign.id, JobCommandAction.PAUSE, reason, self._clock())
            return paused

        return await self._change(campaign_id, decide, job_command=True)

    async def resume(self, campaign_id: str) -> Campaign:
        async def decide(connection: AsyncConnection, campaign: Campaign) -> Campaign:
            if campaign.manual_hold is None:
                return domain.resume(campaign, {}, self._clock())  # raises: nothing to resume
            resumed = domain.resume(campaign, await self._blocking(connection, campaign), self._clock())
            await self._store.enqueue_job_command(connection, campaign.id, JobCommandAction.RESUME, "", self._clock())
            return resumed

        return await self._change(campaign_id, decide, job_command=True)

    async def complete(self, campaign_id: str) -> Campaign:
        async def decide(_: AsyncConnection, campaign: Campaign) -> Campaign:
            return domain.complete(campaign, self._clock())

        return await self._change(campaign_id, decide)

    async def fail(self, campaign_id: str, reason: str) -> Campaign:
        reason = validation.validate_text(reason, "reason", max_length=500)

        async def decide(connection: AsyncConnection, campaign: Campaign) -> Campaign:
            failed = domain.fail(campaign, reason, self._clock())
            if campaign.manual_hold is not None:
                # A failed campaign holds nothing any more: its jobs lose the campaign hold that
                # the pause by hand put on them (a completed one was never paused: RUNNING only).
                await self._store.enqueue_job_command(connection, campaign.id, JobCommandAction.RESUME, "", self._clock())
            return failed

        return await self._change(campaign_id, decide, job_command=True)

    # -- helpers -------------------------------------------------------------------------------

    async def _blocking(self, connection: AsyncConnection, campaign: Campaign) -> dict[str, BreakerState]:
        """The campaign's dependencies whose breakers hold it (open or half-open), read
        share-locked; UNAVAILABLE when the breaker states known here are stale (fail safe)."""
        if self._mirror.is_stale(self._stale_after_s):
            raise Unavailable(
                f"breaker states are stale: breaker_svc not heard from within {self._stale_after_s:g}s; retry later"
            )
        states = await self._mirror.locked_states(connection, campaign.dependencies)
        return domain.holding({d: view.state for d, view in states.items()})

    async def _existing(self, connection: AsyncConnection, campaign_id: str) -> Campaign:
        campaign = await self._store.get(connection, campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return campaign

    async def _change(
        self,
        campaign_id: str,
        decide: Callable[[AsyncConnection, Campaign], Awaitable[Campaign]],
        job_command: bool = False,
    ) -> Campaign:
        """Read, decide, write back if the version is unchanged; retried on a lost race."""
        campaign_id = validation.validate_uuid(campaign_id)
        for attempt in range(MAX_ATTEMPTS):
            try:
                async with self._engine.begin() as connection:
                    current = await self._existing(connection, campaign_id)
                    changed = await decide(connection, current)
                    if changed is current:
                        return current
                    if not await self._store.update(connection, changed, current.version):
                        raise _Conflict()
            except _Conflict:
                pass
            except sqlalchemy.exc.DBAPIError as error:
                if not _is_retryable(error):
                    raise
            else:
                if job_command:
                    self._on_job_command()
                log.info("campaign_changed", campaign_id=campaign_id, status=changed.status.value, version=changed.version)
                return changed
            log.info("campaign_change_retried", campaign_id=campaign_id, attempt=attempt + 1)
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise Aborted(f"campaign {campaign_id} kept changing concurrently; retry")
