"""The outcome outbox forwards in batches with a stable id, and sets aside what it cannot forward.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

`batch_id` is the id breaker_svc counts a batch once by, kept on the rows so a resend (after a
lost answer or a crash) is the same batch; `lease_until` is how long a forwarder has to send it
before another may. `attempts`, `last_error` and `set_aside_at`: a batch refused or failing for
reasons of its own is retried a bounded number of times, then split, and a single outcome that
still fails is set aside rather than blocking every outcome behind it.

Rows waiting at the upgrade are simply not in a batch yet (NULL), and are sent as before.
Downgrading drops the columns: set-aside rows are then in the queue of the older forwarder again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)
BATCHED = "batch_id IS NOT NULL AND set_aside_at IS NULL"
UNBATCHED = "batch_id IS NULL AND set_aside_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("breaker_outbox") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_until", TIMESTAMP, nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=False, server_default=""))
        batch.add_column(sa.Column("set_aside_at", TIMESTAMP, nullable=True))
    op.create_index("ix_breaker_outbox_batched", "breaker_outbox", ["id"], postgresql_where=sa.text(BATCHED), sqlite_where=sa.text(BATCHED))
    op.create_index(
        "ix_breaker_outbox_unbatched", "breaker_outbox", ["id"], postgresql_where=sa.text(UNBATCHED), sqlite_where=sa.text(UNBATCHED)
    )
    op.create_index("ix_breaker_outbox_batch_id", "breaker_outbox", ["batch_id"])


def downgrade() -> None:
    for index in ("ix_breaker_outbox_batch_id", "ix_breaker_outbox_unbatched", "ix_breaker_outbox_batched"):
        op.drop_index(index, table_name="breaker_outbox")
    with op.batch_alter_table("breaker_outbox") as batch:
        for column in ("set_aside_at", "last_error", "attempts", "lease_until", "batch_id"):
            batch.drop_column(column)
