"""Breaker holds go in without a per-row foreign-key check: job_holds.job_id no longer
references jobs.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

A breaker opening on a provider with 20,000 queued jobs inserts 20,000 holds in the
transaction that pauses those jobs. The foreign key ran its check once per inserted hold (a
query that probes jobs' primary key and KEY SHARE-locks the row, a WAL record each, on the very
rows the pause had just updated), which alone cost about half of the pause's own UPDATE:
bench/job_pause.py, same run, 5 interleaved rounds, pause / bare UPDATE of the same rows
2.12x with the key, 1.69x without it.

What the key guarded still holds without it: every hold is written by an INSERT ... SELECT
that reads its job's row in the same statement, a job's holds are deleted when it finishes,
and only finished jobs are ever deleted. Existing holds are kept as they are.

Downgrading deletes holds whose job is gone (there should be none) and restores the key.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# PostgreSQL named the key created in 0001 after the table and column. SQLite keeps it unnamed,
# so there the table is rebuilt (batch mode) from this definition, which has no key.
FOREIGN_KEY = "job_holds_job_id_fkey"
HOLD_KIND = sa.Enum("breaker", "manual", "campaign", name="hold_kind", create_type=False)


def _holds(*job_id_constraints: sa.ForeignKey) -> sa.Table:
    return sa.Table(
        "job_holds",
        sa.MetaData(),
        sa.Column("job_id", sa.String(36), *job_id_constraints, nullable=False),
        sa.Column("kind", HOLD_KIND, nullable=False),
        sa.Column("dependency", sa.String(63), nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "kind", "dependency", name="pk_job_holds"),
        sa.Index("ix_job_holds_kind_dependency", "kind", "dependency", "job_id"),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(FOREIGN_KEY, "job_holds", type_="foreignkey")
        return
    with op.batch_alter_table("job_holds", recreate="always", copy_from=_holds()):
        pass


def downgrade() -> None:
    op.execute("DELETE FROM job_holds WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_holds.job_id)")
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(FOREIGN_KEY, "job_holds", "jobs", ["job_id"], ["id"], ondelete="CASCADE")
        return
    with op.batch_alter_table("job_holds", recreate="always", copy_from=_holds(sa.ForeignKey("jobs.id", ondelete="CASCADE"))):
        pass
