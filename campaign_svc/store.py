"""Campaign persistence (SQLAlchemy Core 2.0, async) on PostgreSQL or SQLite.

Every method takes the caller's connection, so a use case decides what one transaction holds.
Writes of single campaigns are conditional on their version (optimistic concurrency); the
breaker subscriber's writes are set-based statements that apply the hold rule of
`domain.status_for_holds` to every affected campaign at once and bump their versions.
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from sqlalchemy import BigInteger, and_, case, cast, delete, exists, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from campaign_svc.domain import HOLDABLE, Campaign, CampaignStatus, Hold, HoldKind
from campaign_svc.tables import (
    UTCDateTime,
    breaker_states,
    breaker_watch_cursor,
    campaign_dependencies,
    campaign_holds,
    campaigns,
    hold_kind,
    job_commands,
)
from services.request_id import current as current_request_id
from services.watch import BreakerState

c, deps, holds, commands = campaigns.c, campaign_dependencies.c, campaign_holds.c, job_commands.c


class JobCommandAction(str, Enum):
    PAUSE = "pause"
    RESUME = "resume"


@dataclass(frozen=True)
class JobCommand:
    """One call to JobService waiting in the outbox."""

    id: int
    campaign_id: str
    action: JobCommandAction
    reason: str
    attempts: int
    request_id: str | None = None  # the call that wrote it


@dataclass(frozen=True)
class PauseStatus:
    breaker_states: dict[str, BreakerState]
    held_by_dependency: dict[str, list[str]]
    manually_paused: list[str]
    applied_revision: int


def _insert(connection: AsyncConnection, table):  # type: ignore[no-untyped-def]
    return (postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert)(table)


class CampaignStore:
    # -- single campaigns --------------------------------------------------------------------

    async def insert(self, connection: AsyncConnection, campaign: Campaign) -> None:
        await connection.execute(campaigns.insert().values(self._row(campaign)))
        await connection.execute(
            campaign_dependencies.insert(),
            [{"campaign_id": uuid.UUID(campaign.id), "dependency": d} for d in campaign.dependencies],
        )

    async def get(self, connection: AsyncConnection, campaign_id: str) -> Campaign | None:
        found = await self._load(connection, campaigns.select().where(c.id == uuid.UUID(campaign_id)))
        return found[0] if found else None

    async def get_by_request_id(self, connection: AsyncConnection, request_id: str) -> Campaign | None:
        found = await self._load(connection, campaigns.select().where(c.request_id == request_id))
        return found[0] if found else None

    async def update(self, connection: AsyncConnection, campaign: Campaign, expected_version: int) -> bool:
        """Writes `campaign` if its stored version is still `expected_version`; False if a
        concurrent change came first (nothing is written then)."""
        row = self._row(campaign)
        del row["id"], row["request_id"], row["created_at"]
        result = await connection.execute(
            update(campaigns).where(c.id == uuid.UUID(campaign.id), c.version == expected_version).values(row)
        )
        if result.rowcount != 1:
            return False
        campaign_id = uuid.UUID(campaign.id)
        await connection.execute(delete(campaign_holds).where(holds.campaign_id == campaign_id))
        if campaign.holds:
            await connection.execute(campaign_holds.insert(), [self._hold_row(campaign_id, h) for h in campaign.holds])
        return True

    async def page(
        self, connection: AsyncConnection, status: CampaignStatus | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Campaign]:
        """Campaigns oldest first (ties by id), after the keyset position `after`."""
        query = campaigns.select().order_by(c.created_at, c.id).limit(limit)
        if status is not None:
            query = query.where(c.status == status)
        if after is not None:
            created_at, campaign_id = after[0], uuid.UUID(after[1])
            query = query.where(or_(c.created_at > created_at, and_(c.created_at == created_at, c.id > campaign_id)))
        return await self._load(connection, query)

    # -- the breaker subscriber's set-based changes ------------------------------------------

    async def hold_for_breaker(self, connection: AsyncConnection, dependency: str, revision: int, now: datetime) -> int:
        """`dependency` blocks: every running or paused campaign that calls it gets a breaker
        hold for it; running ones become paused. Returns the number of campaigns changed."""
        dependents = select(deps.campaign_id).where(deps.dependency == dependency)
        already_held = select(holds.campaign_id).where(holds.kind == HoldKind.BREAKER, holds.dependency == dependency)
        changed = await connection.execute(
            update(campaigns)
            .where(c.status.in_(HOLDABLE), c.id.in_(dependents), c.id.not_in(already_held))
            .values(status=CampaignStatus.PAUSED, version=c.version + 1, updated_at=now)
        )
        new_holds = select(
            c.id,
            cast(literal(HoldKind.BREAKER.value), hold_kind),
            literal(dependency),
            literal(revision, BigInteger),
            literal(""),
            literal(now, UTCDateTime),
        ).where(c.status.in_(HOLDABLE), c.id.in_(dependents))
        columns = ["campaign_id", "kind", "dependency", "revision", "reason", "created_at"]
        await connection.execute(
            _insert(connection, campaign_holds).from_select(columns, new_holds).on_conflict_do_nothing()
        )
        return changed.rowcount

    async def release_for_breaker(self, connection: AsyncConnection, dependency: str, now: datetime) -> int:
        """`dependency` no longer blocks: its breaker holds go; campaigns left with no hold
        run again. Returns the number of campaigns changed."""
        is_this = and_(holds.kind == HoldKind.BREAKER, holds.dependency == dependency)
        held = select(holds.campaign_id).where(is_this)
        other_hold = exists().where(holds.campaign_id == c.id, ~is_this)
        changed = await connection.execute(
            update(campaigns)
            .where(c.id.in_(held))
            .values(
                status=case((and_(c.status == CampaignStatus.PAUSED, ~other_hold), CampaignStatus.RUNNING), else_=c.status),
                version=c.version + 1,
                updated_at=now,
            )
        )
        await connection.execute(delete(campaign_holds).where(is_this))
        return changed.rowcount

    # -- pause status and metrics --------------------------------------------------------------

    async def pause_status(self, connection: AsyncConnection) -> PauseStatus:
        states = {r.dependency: r.state for r in await connection.execute(select(breaker_states.c.dependency, breaker_states.c.state))}
        for (dependency,) in await connection.execute(select(deps.dependency).distinct()):
            states.setdefault(dependency, BreakerState.CLOSED)
        held: dict[str, list[str]] = defaultdict(list)
        manual: list[str] = []
        rows = await connection.execute(
            select(holds.campaign_id, holds.kind, holds.dependency).order_by(holds.dependency, holds.campaign_id)
        )
        for row in rows:
            if row.kind is HoldKind.MANUAL:
                manual.append(str(row.campaign_id))
            else:
                held[row.dependency].append(str(row.campaign_id))
        revision = await connection.scalar(select(breaker_watch_cursor.c.applied_revision).where(breaker_watch_cursor.c.id == 1))
        return PauseStatus(dict(sorted(states.items())), dict(held), sorted(manual), revision or 0)

    async def count_by_status(self, connection: AsyncConnection) -> dict[CampaignStatus, int]:
        rows = await connection.execute(select(c.status, func.count()).group_by(c.status))
        return {status: count for status, count in rows}

    async def count_held(self, connection: AsyncConnection) -> dict[HoldKind, int]:
        rows = await connection.execute(
            select(holds.kind, func.count(holds.campaign_id.distinct())).group_by(holds.kind)
        )
        return {kind: count for kind, count in rows}

    # -- the job outbox ----------------------------------------------------------------------

    async def enqueue_job_command(
        self, connection: AsyncConnection, campaign_id: str, action: JobCommandAction, reason: str, now: datetime
    ) -> None:
        """Queues a command for job_svc, with the id of the call writing it."""
        await connection.execute(
            job_commands.insert().values(
                campaign_id=uuid.UUID(campaign_id), action=action.value, reason=reason, created_at=now, attempts=0,
                request_id=current_request_id(),
            )
        )

    async def next_job_command(self, connection: AsyncConnection) -> JobCommand | None:
        row = (
            await connection.execute(
                select(job_commands).where(commands.given_up_at.is_(None)).order_by(commands.id).limit(1)
            )
        ).first()
        if row is None:
            return None
        return JobCommand(row.id, str(row.campaign_id), JobCommandAction(row.action), row.reason, row.attempts, row.request_id)

    async def delete_job_command(self, connection: AsyncConnection, command_id: int) -> None:
        await connection.execute(delete(job_commands).where(commands.id == command_id))

    async def record_job_command_failure(
        self, connection: AsyncConnection, command_id: int, error: str, *, attempted: bool, set_aside_at: datetime | None
    ) -> None:
        """Notes the error; `attempted` when job_svc was reached (it counts towards setting the
        row aside), and `set_aside_at` when the row is never to be sent again."""
        await connection.execute(
            update(job_commands)
            .where(commands.id == command_id)
            .values(attempts=commands.attempts + (1 if attempted else 0), last_error=error[:2000], given_up_at=set_aside_at)
        )

    async def pending_job_commands(self, connection: AsyncConnection) -> int:
        return await connection.scalar(select(func.count()).select_from(job_commands).where(commands.given_up_at.is_(None)))

    async def set_aside_job_commands(self, connection: AsyncConnection) -> int:
        return await connection.scalar(select(func.count()).select_from(job_commands).where(commands.given_up_at.is_not(None)))

    # -- mapping -----------------------------------------------------------------------------

    async def _load(self, connection: AsyncConnection, query) -> list[Campaign]:  # type: ignore[no-untyped-def]
        """The campaigns `query` selects with their holds, read in ONE statement so that a
        campaign's row and its holds are one consistent snapshot (dependencies never change)."""
        base = query.subquery()
        joined = (
            select(base, holds.kind, holds.dependency, holds.revision, holds.reason, holds.created_at.label("hold_created_at"))
            .outerjoin(campaign_holds, holds.campaign_id == base.c.id)
            .order_by(base.c.created_at, base.c.id, holds.kind, holds.dependency)
        )
        rows: dict[uuid.UUID, object] = {}
        held: dict[uuid.UUID, list[Hold]] = defaultdict(list)
        for row in (await connection.execute(joined)).mappings():
            rows.setdefault(row["id"], row)
            if row["kind"] is not None:
                held[row["id"]].append(
                    Hold(row["kind"], row["dependency"], row["revision"], row["reason"], row["hold_created_at"])
                )
        if not rows:
            return []
        dependencies: dict[uuid.UUID, list[str]] = defaultdict(list)
        for row in await connection.execute(
            select(deps.campaign_id, deps.dependency).where(deps.campaign_id.in_(list(rows))).order_by(deps.dependency)
        ):
            dependencies[row.campaign_id].append(row.dependency)
        return [self._campaign(r, tuple(dependencies[i]), tuple(held[i])) for i, r in rows.items()]

    @staticmethod
    def _campaign(row, dependencies: tuple[str, ...], campaign_holds_: tuple[Hold, ...]) -> Campaign:  # type: ignore[no-untyped-def]
        return Campaign(
            id=str(row["id"]),
            name=row["name"],
            description=row["description"],
            dependencies=dependencies,
            status=row["status"],
            holds=campaign_holds_,
            version=row["version"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            request_id=row["request_id"],
            fail_reason=row["fail_reason"],
            started_at=row["started_at"],
            completed_at=row["completed_at"],
            failed_at=row["failed_at"],
        )

    @staticmethod
    def _row(campaign: Campaign) -> dict:
        return {
            "id": uuid.UUID(campaign.id),
            "request_id": campaign.request_id,
            "name": campaign.name,
            "description": campaign.description,
            "status": campaign.status,
            "fail_reason": campaign.fail_reason,
            "version": campaign.version,
            "created_at": campaign.created_at,
            "updated_at": campaign.updated_at,
            "started_at": campaign.started_at,
            "completed_at": campaign.completed_at,
            "failed_at": campaign.failed_at,
        }

    @staticmethod
    def _hold_row(campaign_id: uuid.UUID, hold: Hold) -> dict:
        return {
            "campaign_id": campaign_id,
            "kind": hold.kind,
            "dependency": hold.dependency,
            "revision": hold.revision,
            "reason": hold.reason,
            "created_at": hold.created_at,
        }
