"""Migrations 0005 (priority, result, lost-lease count), 0008 (claim time) and 0009 (no foreign
key from job_dependencies to jobs) upgrade a database holding jobs written by the previous
version and downgrade back, on PostgreSQL and SQLite."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from alembic import command
from job.v1 import job_pb2
from prometheus_client import REGISTRY
from sqlalchemy import inspect, text

from job_svc import metrics
from job_svc.app import MIGRATIONS_DIR
from services.db import alembic_config, create_engine
from tests.support.job import claim_request, running_jobs, unique

JOB_COLUMNS = "id, campaign_id, job_type, payload, status, attempts, max_attempts, provider_failures, lease_owner, " \
    "lease_expires_at, run_after, last_error, request_id, created_at, updated_at"


async def write_old_jobs(url: str, statuses: tuple[str, ...], job_type: str = "enrich") -> dict[str, str]:
    """A job per status, as versions 0004 to 0007 wrote them: a paused one has a hold, a
    processing one is leased to worker `w-old` for an hour."""
    ids = {status: str(uuid.uuid4()) for status in statuses}
    now = datetime.now(UTC)
    sqlite = url.startswith("sqlite")

    def stamp(at: datetime) -> datetime:
        return at.replace(tzinfo=None) if sqlite else at

    engine = create_engine(url)
    async with engine.begin() as connection:
        for status, job_id in ids.items():
            leased = status == "processing"
            await connection.execute(
                text(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (:id, NULL, :job_type, :payload, :status, 0, 3, 0, :owner, "
                     ":expires, :at, '', :request_id, :at, :at)"),
                {
                    "id": job_id, "job_type": job_type, "payload": '{"lead": 1}', "status": status,
                    "owner": "w-old" if leased else None, "expires": stamp(now + timedelta(hours=1)) if leased else None,
                    "at": stamp(now - timedelta(minutes=5)), "request_id": f"old-{status}",
                },
            )
            await connection.execute(text("INSERT INTO job_dependencies (job_id, dependency) VALUES (:id, 'legacy')"), {"id": job_id})
        if "paused" in ids:
            await connection.execute(
                text("INSERT INTO job_holds (job_id, kind, dependency, revision, reason, created_at) "
                     "VALUES (:id, 'manual', 'legacy', 0, 'by hand', :at)"),
                {"id": ids["paused"], "at": stamp(now - timedelta(minutes=5))},
            )
    await engine.dispose()
    return ids


async def job_rows(url: str, columns: str = "status") -> dict[str, Any]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = {row.id: row[1] for row in await connection.execute(text(f"SELECT id, {columns} FROM jobs"))}
    await engine.dispose()
    return rows


async def test_0005_upgrades_jobs_of_the_previous_version_and_downgrades_back(database_url: str) -> None:
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, "0004")
    ids = await write_old_jobs(database_url, ("pending", "completed", "paused"))
    await asyncio.to_thread(command.upgrade, config, "head")
    async with running_jobs(database_url) as svc:
        jobs = {i: (await svc.stub.GetJob(job_pb2.GetJobRequest(id=i))).job for i in ids.values()}
        assert {j.priority for j in jobs.values()} == {0} and {j.lease_expirations for j in jobs.values()} == {0}
        assert not any(j.HasField("result") for j in jobs.values())
        assert [h.reason for h in jobs[ids["paused"]].holds] == ["by hand"]
        claimed = (await svc.stub.ClaimJobs(claim_request("w", ["legacy"], 10))).jobs
        assert [j.id for j in claimed] == [ids["pending"]]
        done = job_pb2.CompleteJobRequest(id=ids["pending"], worker_id="w")
        done.result.update({"ok": True})
        await svc.stub.CompleteJob(done)
    await asyncio.to_thread(command.downgrade, config, "0004")
    assert await job_rows(database_url) == {ids["pending"]: "completed", ids["completed"]: "completed", ids["paused"]: "paused"}
    await asyncio.to_thread(command.upgrade, config, "head")


async def test_0008_upgrades_jobs_of_the_previous_version_and_downgrades_back(database_url: str) -> None:
    """Jobs claimed from then on are timed; a job claimed before has no claim time, so finishing
    it observes nothing."""
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, "0007")
    job_type = unique("migrated")
    ids = await write_old_jobs(database_url, ("pending", "processing", "completed"), job_type)
    await asyncio.to_thread(command.upgrade, config, "head")
    assert set((await job_rows(database_url, "claimed_at")).values()) == {None}
    completed = {"job_type": job_type, "outcome": metrics.RUN_COMPLETED}
    async with running_jobs(database_url) as svc:
        claimed = (await svc.stub.ClaimJobs(claim_request("w", ["legacy"], 10))).jobs
        assert [j.id for j in claimed] == [ids["pending"]]
        await svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=ids["pending"], worker_id="w"))
        await svc.stub.CompleteJob(job_pb2.CompleteJobRequest(id=ids["processing"], worker_id="w-old"))
    assert REGISTRY.get_sample_value("job_run_seconds_count", completed) == 1
    claim_times = await job_rows(database_url, "claimed_at")
    assert claim_times[ids["pending"]] is not None and claim_times[ids["processing"]] is claim_times[ids["completed"]] is None
    await asyncio.to_thread(command.downgrade, config, "0007")
    assert await job_rows(database_url) == dict.fromkeys(ids.values(), "completed")
    await asyncio.to_thread(command.upgrade, config, "head")


async def dependency_rows(url: str) -> tuple[list[tuple[str, str]], list[list[str]]]:
    """job_dependencies' rows and the columns of its foreign keys."""
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = sorted((r.job_id, r.dependency) for r in await connection.execute(text("SELECT job_id, dependency FROM job_dependencies")))
        keys = await connection.run_sync(lambda sync: [k["constrained_columns"] for k in inspect(sync).get_foreign_keys("job_dependencies")])
    await engine.dispose()
    return rows, keys


async def test_0009_keeps_the_dependencies_without_the_key_and_a_downgrade_restores_it(database_url: str) -> None:
    """Upgraded, the jobs keep their dependency rows and the key is gone; a row whose job is gone
    (none should be) is deleted by the downgrade, which puts the key back, cascade and all."""
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, "0008")
    ids = await write_old_jobs(database_url, ("pending", "completed"))
    kept = sorted((job_id, "legacy") for job_id in ids.values())
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await dependency_rows(database_url) == (kept, [])
    engine = create_engine(database_url)
    async with engine.begin() as connection:  # no key refuses it now
        await connection.execute(text("INSERT INTO job_dependencies (job_id, dependency) VALUES (:id, 'legacy')"), {"id": str(uuid.uuid4())})
    await engine.dispose()
    await asyncio.to_thread(command.downgrade, config, "0008")
    assert await dependency_rows(database_url) == (kept, [["job_id"]])
    engine = create_engine(database_url)
    async with engine.begin() as connection:  # the cascade is back
        await connection.execute(text("DELETE FROM jobs WHERE id = :id"), {"id": ids["completed"]})
    await engine.dispose()
    assert await dependency_rows(database_url) == ([(ids["pending"], "legacy")], [["job_id"]])
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await dependency_rows(database_url) == ([(ids["pending"], "legacy")], [])
