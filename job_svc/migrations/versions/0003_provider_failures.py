"""Jobs count the failures blamed on a provider, for their growing backoff.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

A failure blamed on a provider spends no attempt; without a count its retry waited the same
second every time, so a worker that kept blaming a healthy provider retried a job for ever at
full speed. Each such failure now doubles the wait (RetryPolicy), capped.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("provider_failures", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("provider_failures")
