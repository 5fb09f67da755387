"""job_svc's schema as SQLAlchemy Core tables. Alembic migrations (job_svc/migrations) create
it; a test checks that the migrated database matches these definitions.

- `jobs`: one row per job; `job_dependencies`: the providers each job calls.
- `job_holds`: why a job is paused (a job is paused while it has at least one hold).
- `job_pauses`: the standing manual and campaign pauses, so jobs created later get the hold.
- `breaker_outbox`: call outcomes waiting to be forwarded to breaker_svc (and those set aside).
- `breaker_states` / `breaker_watch_cursor`: the breaker mirror (services.mirror).
"""

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    cast,
    literal_column,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.elements import TextClause
from sqlalchemy.types import TypeDecorator

from job_svc.domain import HoldKind, JobStatus
from services.mirror import define_mirror_tables


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp that is always UTC-aware in Python. SQLite keeps no zone: it stores UTC
    without one, in a fixed format, so its text compares in time order."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):  # type: ignore[no-untyped-def]
        if value is None or value.tzinfo is UTC:  # asyncpg's timestamptz: UTC already
            return value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _values(enum_type: type) -> list[str]:
    return [member.value for member in enum_type]


JOB_STATUS = Enum(JobStatus, name="job_status", values_callable=_values, validate_strings=True)
HOLD_KIND = Enum(HoldKind, name="hold_kind", values_callable=_values, validate_strings=True)


def status_literal(status: JobStatus) -> Any:
    """A status written into the SQL as a constant, not a parameter: a prepared statement's
    generic plan cannot use a partial index (`WHERE status = 'pending'`) or one status's
    statistics for a parameter. Compiled with the statement (a `literal_execute` parameter
    would be rendered again on every execution)."""
    return cast(literal_column(f"'{status.value}'"), JOB_STATUS)


def statuses_literal(statuses: Iterable[JobStatus]) -> list[Any]:
    """`status_literal` of each, for `status.in_(...)`."""
    return [status_literal(status) for status in statuses]
PAYLOAD = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only auto-increments an INTEGER PRIMARY KEY.
SERIAL = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()


def _where(predicate: TextClause) -> dict[str, TextClause]:
    return {"postgresql_where": predicate, "sqlite_where": predicate}


jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("campaign_id", String(36), nullable=True),
    Column("job_type", String(100), nullable=False),
    Column("payload", PAYLOAD, nullable=False),
    Column("status", JOB_STATUS, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("max_attempts", Integer, nullable=False),
    # Failures blamed on a provider since the job last ran clean: they spend no attempt, but
    # each one doubles the wait before the next try.
    Column("provider_failures", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("run_after", UtcDateTime, nullable=False),
    Column("last_error", Text, nullable=False),
    Column("request_id", String(128), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # Claim order: lower first (-100..100), as in River.
    Column("priority", Integer, nullable=False, server_default="0"),
    # What the worker reported on completion.
    Column("result", PAYLOAD, nullable=True),
    # Leases that expired without a result; at the limit the job fails (poison protection).
    Column("lease_expirations", Integer, nullable=False, server_default="0"),
    # When the job was last leased (by the claim's own UPDATE), so a finish can tell its run
    # time; NULL for jobs never claimed since migration 0008.
    Column("claimed_at", UtcDateTime, nullable=True),
    # Claims walk pending jobs in claim order and stop at max_jobs. Partial: a paused job
    # leaves it, so pausing 20,000 jobs inserts nothing into it.
    Index(
        "ix_jobs_claim", "priority", "run_after", "created_at", "id",
        **_where(text("status = 'pending'")),
    ),
    # ListJobs pages by status (keyset on created_at, id); redrive finds failed jobs.
    Index("ix_jobs_status_created", "status", "created_at", "id"),
    # ListJobs by job type.
    Index("ix_jobs_type_created", "job_type", "created_at", "id"),
    # Retention deletes the oldest completed and cancelled jobs.
    Index("ix_jobs_finished", "updated_at", **_where(text("status IN ('completed', 'cancelled')"))),
    # ListJobs without a status filter (keyset on created_at, id).
    Index("ix_jobs_created", "created_at", "id"),
    # Partial indexes below: a job without a lease, campaign or request id costs them nothing,
    # which keeps the 20,000-row breaker UPDATEs cheaper.
    # The lease sweeper: processing jobs whose lease has ended.
    Index("ix_jobs_lease", "lease_expires_at", **_where(text("status = 'processing'"))),
    Index("ix_jobs_campaign", "campaign_id", "created_at", **_where(text("campaign_id IS NOT NULL"))),
    # An idempotency key names one job.
    Index("uq_jobs_request_id", "request_id", unique=True, **_where(text("request_id IS NOT NULL"))),
)

job_dependencies = Table(
    "job_dependencies",
    metadata,
    # No foreign key to jobs: its check ran once per inserted row, a quarter of CreateJobs'
    # INSERT of 1,000 jobs; retention deletes a job's rows with the job (migration 0009 says why
    # that is safe).
    Column("job_id", String(36), nullable=False),
    Column("dependency", String(63), nullable=False),
    PrimaryKeyConstraint("job_id", "dependency", name="pk_job_dependencies"),
    # A breaker opening finds the jobs of its dependency.
    Index("ix_job_dependencies_dependency", "dependency", "job_id"),
)

job_holds = Table(
    "job_holds",
    metadata,
    # No foreign key to jobs: its check ran once per inserted hold, and a breaker opening
    # inserts one per queued job of the provider (migration 0006 says why that is safe).
    Column("job_id", String(36), nullable=False),
    Column("kind", HOLD_KIND, nullable=False),
    Column("dependency", String(63), nullable=False),  # '' for campaign holds
    Column("revision", BigInteger, nullable=False),  # breaker holds; 0 for the others
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("job_id", "kind", "dependency", name="pk_job_holds"),
    # Removing one dependency's (or campaign's) holds from every job.
    Index("ix_job_holds_kind_dependency", "kind", "dependency", "job_id"),
)

job_pauses = Table(
    "job_pauses",
    metadata,
    Column("kind", HOLD_KIND, nullable=False),  # manual or campaign
    Column("key", String(63), nullable=False),  # the dependency or the campaign id
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_job_pauses"),
)

breaker_outbox = Table(
    "breaker_outbox",
    metadata,
    Column("id", SERIAL, primary_key=True, autoincrement=True),
    Column("dependency", String(63), nullable=False),
    Column("success", Boolean, nullable=False),
    Column("duration_s", Float, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    # The batch the row was sent in (RecordOutcomeBatches' batch_id): a resend reuses it, so
    # breaker_svc counts the batch once. NULL until the forwarder takes the row into a batch.
    Column("batch_id", String(64), nullable=True),
    # While a forwarder is sending the batch; once past, another may resend it (a crash).
    Column("lease_until", UtcDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=False, server_default=""),
    # Set aside (never sent again) after bounded retries, so it cannot block the rows behind it.
    Column("set_aside_at", UtcDateTime, nullable=True),
    # The call that wrote the outcome, sent on to breaker_svc as x-request-id.
    Column("request_id", String(128), nullable=True),
)
# The two ways the forwarder takes rows, oldest first: batches already formed (few) and rows not
# yet in a batch; set-aside rows are in neither index.
Index(
    "ix_breaker_outbox_batched",
    breaker_outbox.c.id,
    postgresql_where=text("batch_id IS NOT NULL AND set_aside_at IS NULL"),
    sqlite_where=text("batch_id IS NOT NULL AND set_aside_at IS NULL"),
)
Index(
    "ix_breaker_outbox_unbatched",
    breaker_outbox.c.id,
    postgresql_where=text("batch_id IS NULL AND set_aside_at IS NULL"),
    sqlite_where=text("batch_id IS NULL AND set_aside_at IS NULL"),
)
Index("ix_breaker_outbox_batch_id", breaker_outbox.c.batch_id)

breaker_states, breaker_watch_cursor = define_mirror_tables(metadata)
