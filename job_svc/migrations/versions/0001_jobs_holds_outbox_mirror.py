"""Jobs, their dependencies and holds, standing pauses, the outcome outbox and the breaker mirror.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

The enum values are written out here (a migration is history, it must not change when the code
does); a test checks them against job_svc.domain and the migrated schema against job_svc.tables.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_STATUS = sa.Enum("pending", "processing", "completed", "failed", "cancelled", "paused", name="job_status")
HOLD_KIND = sa.Enum("breaker", "manual", "campaign", name="hold_kind")
BREAKER_STATE = sa.Enum("closed", "open", "half_open", "forced_open", "forced_closed", name="breaker_state")
TIMESTAMP = sa.DateTime(timezone=True)
PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _where(predicate: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("campaign_id", sa.String(36), nullable=True),
        sa.Column("job_type", sa.String(100), nullable=False),
        sa.Column("payload", PAYLOAD, nullable=False),
        sa.Column("status", JOB_STATUS, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", TIMESTAMP, nullable=True),
        sa.Column("run_after", TIMESTAMP, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created_at", "id"])
    op.create_index("ix_jobs_created", "jobs", ["created_at", "id"])
    op.create_index("ix_jobs_lease", "jobs", ["lease_expires_at"], **_where("status = 'processing'"))
    op.create_index("ix_jobs_campaign", "jobs", ["campaign_id", "created_at"], **_where("campaign_id IS NOT NULL"))
    op.create_index("uq_jobs_request_id", "jobs", ["request_id"], unique=True, **_where("request_id IS NOT NULL"))

    op.create_table(
        "job_dependencies",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dependency", sa.String(63), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "dependency", name="pk_job_dependencies"),
    )
    op.create_index("ix_job_dependencies_dependency", "job_dependencies", ["dependency", "job_id"])

    op.create_table(
        "job_holds",
        sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", HOLD_KIND, nullable=False),
        sa.Column("dependency", sa.String(63), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("job_id", "kind", "dependency", name="pk_job_holds"),
    )
    op.create_index("ix_job_holds_kind_dependency", "job_holds", ["kind", "dependency", "job_id"])

    op.create_table(
        "job_pauses",
        sa.Column("kind", HOLD_KIND, nullable=False),
        sa.Column("key", sa.String(63), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name="pk_job_pauses"),
    )

    op.create_table(
        "breaker_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("dependency", sa.String(63), nullable=False),
        sa.Column("success", sa.Boolean, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
    )

    # The breaker mirror (services.mirror.define_mirror_tables).
    op.create_table(
        "breaker_states",
        sa.Column("dependency", sa.String(63), primary_key=True),
        sa.Column("state", BREAKER_STATE, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("half_open_permitted_calls", sa.Integer, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )
    op.create_table(
        "breaker_watch_cursor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("applied_revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
    )


def downgrade() -> None:
    for table in ("breaker_watch_cursor", "breaker_states", "breaker_outbox", "job_pauses", "job_holds", "job_dependencies", "jobs"):
        op.drop_table(table)
    bind = op.get_bind()
    for enum in (BREAKER_STATE, HOLD_KIND, JOB_STATUS):
        enum.drop(bind, checkfirst=True)
