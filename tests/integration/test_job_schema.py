"""job_svc's schema: the database enums hold exactly the Python enums' values (read from the live
PostgreSQL catalogue), and the migrated schema matches job_svc.tables."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect as sa_inspect
from sqlalchemy import text

from job_svc.app import MIGRATIONS_DIR
from job_svc.domain import HoldKind, JobStatus
from job_svc.tables import metadata
from services.db import alembic_config, create_engine, upgrade_schema
from services.watch import BreakerState

# The migration that gave the outbox batch ids and set-aside rows, and the one before it.
OUTBOX_BATCHES, OUTBOX_BATCHES_PARENT = "0004", "0003"


@pytest.fixture
async def migrated_postgres(postgres_url: str) -> AsyncIterator[str]:
    await upgrade_schema(postgres_url, MIGRATIONS_DIR)
    yield postgres_url


@pytest.mark.postgres
async def test_database_enums_hold_exactly_the_python_values(migrated_postgres: str) -> None:
    connection = await asyncpg.connect(migrated_postgres)
    try:
        rows = await connection.fetch(
            "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid ORDER BY t.typname, e.enumsortorder"
        )
    finally:
        await connection.close()
    catalogue: dict[str, list[str]] = {}
    for row in rows:
        catalogue.setdefault(row["typname"], []).append(row["enumlabel"])
    assert catalogue == {
        "job_status": [s.value for s in JobStatus],
        "hold_kind": [k.value for k in HoldKind],
        "breaker_state": [s.value for s in BreakerState],
    }


def _differences(sync_connection) -> list:  # type: ignore[no-untyped-def]
    context = MigrationContext.configure(sync_connection, opts={"compare_type": True})
    return compare_metadata(context, metadata)


async def test_the_migrations_build_exactly_the_declared_schema(database_url: str) -> None:
    url = database_url
    await upgrade_schema(url, MIGRATIONS_DIR)
    await upgrade_schema(url, MIGRATIONS_DIR)  # a second start changes nothing
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await engine.dispose()


async def test_the_outbox_migration_keeps_waiting_outcomes_both_ways(database_url: str) -> None:
    """Outcomes waiting at the upgrade are sent as before (not in a batch yet); a downgrade keeps
    every row, those set aside included (the older forwarder then sends them again)."""
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, OUTBOX_BATCHES_PARENT)
    engine = create_engine(database_url)
    try:
        insert_row = text("INSERT INTO breaker_outbox (dependency, success, duration_s, created_at) VALUES (:d, :s, 1.5, :t)")
        async with engine.begin() as connection:
            for dependency in ("apollo", "openai"):
                await connection.execute(insert_row, {"d": dependency, "s": True, "t": datetime.now(UTC)})
        await asyncio.to_thread(command.upgrade, config, OUTBOX_BATCHES)
        async with engine.begin() as connection:
            rows = (await connection.execute(text("SELECT dependency, batch_id, attempts, last_error, set_aside_at FROM breaker_outbox ORDER BY id"))).all()
            assert [tuple(r) for r in rows] == [("apollo", None, 0, "", None), ("openai", None, 0, "", None)]
            await connection.execute(text("UPDATE breaker_outbox SET set_aside_at = :t, last_error = 'x' WHERE dependency = 'openai'"), {"t": datetime.now(UTC)})
        await asyncio.to_thread(command.downgrade, config, OUTBOX_BATCHES_PARENT)
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT dependency, duration_s FROM breaker_outbox ORDER BY id"))).all() == [("apollo", 1.5), ("openai", 1.5)]
            columns = await connection.run_sync(lambda sync: {c["name"] for c in sa_inspect(sync).get_columns("breaker_outbox")})
            assert columns == {"id", "dependency", "success", "duration_s", "created_at"}
    finally:
        await engine.dispose()
