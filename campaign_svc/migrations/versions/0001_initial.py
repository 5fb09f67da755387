"""Campaigns, their dependencies and holds, the job outbox, and the breaker mirror.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Spelled out here (not imported) so this migration keeps meaning what it meant when written.
CAMPAIGN_STATUS = sa.Enum("created", "running", "paused", "completed", "failed", name="campaign_status")
HOLD_KIND = sa.Enum("breaker", "manual", name="hold_kind")
BREAKER_STATE = sa.Enum("closed", "open", "half_open", "forced_open", "forced_closed", name="breaker_state")


def timestamp(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("status", CAMPAIGN_STATUS, nullable=False),
        sa.Column("fail_reason", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        timestamp("created_at"),
        timestamp("updated_at"),
        timestamp("started_at", nullable=True),
        timestamp("completed_at", nullable=True),
        timestamp("failed_at", nullable=True),
        sa.UniqueConstraint("request_id", name="campaigns_request_id_key"),
    )
    op.create_index("ix_campaigns_created_at_id", "campaigns", ["created_at", "id"])
    op.create_index("ix_campaigns_status_created_at_id", "campaigns", ["status", "created_at", "id"])
    op.create_table(
        "campaign_dependencies",
        sa.Column("campaign_id", sa.Uuid, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("dependency", sa.String(63), primary_key=True),
    )
    op.create_index("ix_campaign_dependencies_dependency", "campaign_dependencies", ["dependency", "campaign_id"])
    op.create_table(
        "campaign_holds",
        sa.Column("campaign_id", sa.Uuid, sa.ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("kind", HOLD_KIND, primary_key=True),
        sa.Column("dependency", sa.String(63), primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        timestamp("created_at"),
    )
    op.create_index("ix_campaign_holds_kind_dependency", "campaign_holds", ["kind", "dependency"])
    op.create_table(
        "job_commands",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("campaign_id", sa.Uuid, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        timestamp("created_at"),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        timestamp("given_up_at", nullable=True),
    )
    op.create_table(
        "breaker_states",
        sa.Column("dependency", sa.String(63), primary_key=True),
        sa.Column("state", BREAKER_STATE, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("half_open_permitted_calls", sa.Integer, nullable=False),
        timestamp("updated_at"),
    )
    op.create_table(
        "breaker_watch_cursor",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("applied_revision", sa.BigInteger, nullable=False),
        timestamp("updated_at"),
    )


def downgrade() -> None:
    for table in ("breaker_watch_cursor", "breaker_states", "job_commands", "campaign_holds", "campaign_dependencies", "campaigns"):
        op.drop_table(table)
    bind = op.get_bind()
    for enum in (BREAKER_STATE, HOLD_KIND, CAMPAIGN_STATUS):
        enum.drop(bind, checkfirst=True)
