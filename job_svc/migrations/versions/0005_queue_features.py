"""The queue's own features: priority, a stored result, lost-lease counting, and the indexes of
the claim order, ListJobs by type and retention.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

Existing jobs get priority 0, no result and no lost lease: they keep their claim order
(run_after, then creation). Downgrading drops the three columns and the indexes; jobs keep
everything else.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PAYLOAD = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _where(predicate: str) -> dict[str, sa.TextClause]:
    return {"postgresql_where": sa.text(predicate), "sqlite_where": sa.text(predicate)}


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("result", PAYLOAD, nullable=True))
    op.add_column("jobs", sa.Column("lease_expirations", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(
        "ix_jobs_claim", "jobs", ["priority", "run_after", "created_at", "id"], **_where("status = 'pending'")
    )
    op.create_index("ix_jobs_type_created", "jobs", ["job_type", "created_at", "id"])
    op.create_index("ix_jobs_finished", "jobs", ["updated_at"], **_where("status IN ('completed', 'cancelled')"))


def downgrade() -> None:
    op.drop_index("ix_jobs_finished", "jobs")
    op.drop_index("ix_jobs_type_created", "jobs")
    op.drop_index("ix_jobs_claim", "jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_expirations")
        batch.drop_column("result")
        batch.drop_column("priority")
