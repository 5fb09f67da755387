"""The breaker watch cursor remembers the epoch of breaker_svc's log its revision counts in.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Revisions restart from 0 when breaker_svc's log is lost (an in-memory breaker_svc restarted, Redis
flushed); the log then has a new epoch. Rows written before this migration have no epoch (NULL):
the mirror then starts from a snapshot rather than trusting the revision alone.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("breaker_watch_cursor", sa.Column("epoch", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("breaker_watch_cursor") as batch:
        batch.drop_column("epoch")
