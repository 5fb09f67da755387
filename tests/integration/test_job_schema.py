"""job_svc's schema: the database enums hold exactly the Python enums' values (read from the live
PostgreSQL catalogue), and the migrated schema matches job_svc.tables."""

from collections.abc import AsyncIterator
import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from job_svc.app import MIGRATIONS_DIR
from job_svc.domain import HoldKind, JobStatus
from job_svc.tables import metadata
from services.db import create_engine, upgrade_schema
from services.watch import BreakerState


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
