"""The campaign database, as SQLAlchemy Core tables (the migrations create the same schema).

The enums store exactly the lowercase values of the Python enums, so code and database spell
every status the same way.
"""

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
    text,
)

from campaign_svc.domain import CampaignStatus, HoldKind
from services.mirror import define_mirror_tables

metadata = MetaData()


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on both backends (SQLite stores no offset: it is UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # type: ignore[no-untyped-def]
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def values_enum(enum_type: type, name: str) -> Enum:
    return Enum(enum_type, name=name, values_callable=lambda members: [m.value for m in members], validate_strings=True)


campaign_status = values_enum(CampaignStatus, "campaign_status")
hold_kind = values_enum(HoldKind, "hold_kind")

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Uuid, primary_key=True),
    Column("request_id", String(128), nullable=True),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("status", campaign_status, nullable=False),
    Column("fail_reason", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("started_at", UTCDateTime, nullable=True),
    Column("completed_at", UTCDateTime, nullable=True),
    Column("failed_at", UTCDateTime, nullable=True),
    UniqueConstraint("request_id", name="campaigns_request_id_key"),  # idempotent creates
    Index("ix_campaigns_created_at_id", "created_at", "id"),
    Index("ix_campaigns_status_created_at_id", "status", "created_at", "id"),
)

campaign_dependencies = Table(
    "campaign_dependencies",
    metadata,
    Column("campaign_id", Uuid, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("dependency", String(63), primary_key=True),
    Index("ix_campaign_dependencies_dependency", "dependency", "campaign_id"),
)

# One row per hold; a manual hold has dependency '' (at most one per campaign).
campaign_holds = Table(
    "campaign_holds",
    metadata,
    Column("campaign_id", Uuid, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("kind", hold_kind, primary_key=True),
    Column("dependency", String(63), primary_key=True),
    Column("revision", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Index("ix_campaign_holds_kind_dependency", "kind", "dependency"),
)

# The outbox of calls to JobService, delivered in id order by the forwarder; a row given up
# (`given_up_at`) is set aside and never sent again.
job_commands = Table(
    "job_commands",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("campaign_id", Uuid, nullable=False),
    Column("action", String(16), nullable=False),  # JobCommandAction
    Column("reason", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("given_up_at", UTCDateTime, nullable=True),
    # The call that wrote the command, sent on to job_svc as x-request-id.
    Column("request_id", String(128), nullable=True),
    # What the forwarder reads: the oldest rows still to deliver (set-aside ones are not in it).
    Index(
        "ix_job_commands_pending",
        "id",
        postgresql_where=text("given_up_at IS NULL"),
        sqlite_where=text("given_up_at IS NULL"),
    ),
)

breaker_states, breaker_watch_cursor = define_mirror_tables(metadata)
