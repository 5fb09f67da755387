"""Migration 0006 on a database with holds in it: job_holds loses its foreign key to jobs and
keeps every hold; downgrading deletes holds whose job is gone and restores the key."""

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, insert, select

from job_svc.app import MIGRATIONS_DIR
from job_svc.domain import HoldKind, JobStatus
from job_svc.tables import job_holds, jobs
from services.db import alembic_config, create_engine, upgrade_schema

BEFORE = "0005"
JOB = "11111111-1111-1111-1111-111111111111"
GONE = "22222222-2222-2222-2222-222222222222"


async def _to_before(url: str, downgrade: bool = False) -> None:
    await asyncio.to_thread(command.downgrade if downgrade else command.upgrade, alembic_config(url, MIGRATIONS_DIR), BEFORE)


def _hold(job_id: str, now: datetime) -> dict[str, object]:
    return {"job_id": job_id, "kind": HoldKind.BREAKER, "dependency": "openai", "revision": 1, "reason": "open", "created_at": now}


async def _state(url: str) -> tuple[list[str], list[list[str]]]:
    """The holds' job ids and the columns of job_holds' foreign keys."""
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            held = sorted((await connection.execute(select(job_holds.c.job_id))).scalars())
            keys = await connection.run_sync(lambda sync: [k["constrained_columns"] for k in inspect(sync).get_foreign_keys("job_holds")])
    finally:
        await engine.dispose()
    return held, keys


async def test_holds_keep_their_rows_without_the_key_and_get_it_back_on_downgrade(database_url: str) -> None:
    url, now = database_url, datetime.now(UTC)
    await _to_before(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(jobs).values(
                id=JOB, job_type="enrich", payload={}, status=JobStatus.PAUSED, attempts=0, max_attempts=3,
                run_after=now, last_error="", created_at=now, updated_at=now,
            ))
            await connection.execute(insert(job_holds).values(_hold(JOB, now)))
    finally:
        await engine.dispose()

    await upgrade_schema(url, MIGRATIONS_DIR)
    assert await _state(url) == ([JOB], [])
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(insert(job_holds).values(_hold(GONE, now)))  # no key refuses it now
    finally:
        await engine.dispose()

    await _to_before(url, downgrade=True)
    assert await _state(url) == ([JOB], [["job_id"]])
    await upgrade_schema(url, MIGRATIONS_DIR)
    assert await _state(url) == ([JOB], [])
