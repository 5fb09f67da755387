"""Outbox rows remember the call that wrote them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

The outcome forwarder sends the request ids of a batch's rows on as `x-request-id`, so that one
id can be followed from job_svc's access log into breaker_svc's. Rows written before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("breaker_outbox", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("breaker_outbox") as batch:
        batch.drop_column("request_id")
