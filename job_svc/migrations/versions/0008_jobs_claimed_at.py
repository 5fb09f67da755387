"""Jobs remember when they were last claimed.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

A finish observes the job's run time (job_run_seconds: claim to finish) from `claimed_at`, which
the claim's UPDATE writes. Jobs written before have none, and their finishes are not timed.
Downgrading drops the column; jobs keep everything else.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("claimed_at")
