"""The job-command outbox sets rows aside; the forwarder reads only those still to deliver.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

A row refused by job_svc, or failing for a reason of its own again and again, is now set aside
(`given_up_at`) instead of blocking every row behind it. Set-aside rows stay in the table for an
operator; a partial index keeps the forwarder's "oldest row still to deliver" and the pending
count off them. Existing rows need no change: a row given up before was already set aside.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = "given_up_at IS NULL"


def upgrade() -> None:
    op.create_index("ix_job_commands_pending", "job_commands", ["id"], postgresql_where=sa.text(PENDING), sqlite_where=sa.text(PENDING))


def downgrade() -> None:
    op.drop_index("ix_job_commands_pending", table_name="job_commands")
