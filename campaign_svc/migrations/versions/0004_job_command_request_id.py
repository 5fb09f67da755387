"""Job commands remember the call that wrote them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

The outbox forwarder sends a command's request id on as `x-request-id`, so that one id can be
followed from campaign_svc's access log into job_svc's. Commands written before have none.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("job_commands", sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("job_commands") as batch:
        batch.drop_column("request_id")
