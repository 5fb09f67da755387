"""Migration 0005 (priority, result, lost-lease count) upgrades a database holding jobs written by
the previous version and downgrades back, on PostgreSQL and SQLite."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from alembic import command
from job.v1 import job_pb2
from sqlalchemy import text

from job_svc.app import MIGRATIONS_DIR
from services.db import alembic_config, create_engine
from tests.support.job import claim_request, running_jobs

JOB_COLUMNS = "id, campaign_id, job_type, payload, status, attempts, max_attempts, provider_failures, lease_owner, " \
    "lease_expires_at, run_after, last_error, request_id, created_at, updated_at"


async def write_jobs_as_version_0004(url: str) -> dict[str, str]:
    """A pending, a completed and a paused job (with a hold), as the previous version wrote them."""
    ids = {status: str(uuid.uuid4()) for status in ("pending", "completed", "paused")}
    then = datetime.now(UTC) - timedelta(minutes=5)
    sqlite = url.startswith("sqlite")
    stamp = then.replace(tzinfo=None) if sqlite else then
    engine = create_engine(url)
    async with engine.begin() as connection:
        for status, job_id in ids.items():
            await connection.execute(
                text(f"INSERT INTO jobs ({JOB_COLUMNS}) VALUES (:id, NULL, 'enrich', :payload, :status, 0, 3, 0, NULL, NULL, "
                     ":at, '', :request_id, :at, :at)"),
                {"id": job_id, "payload": '{"lead": 1}', "status": status, "at": stamp, "request_id": f"old-{status}"},
            )
            await connection.execute(text("INSERT INTO job_dependencies (job_id, dependency) VALUES (:id, 'legacy')"), {"id": job_id})
        await connection.execute(
            text("INSERT INTO job_holds (job_id, kind, dependency, revision, reason, created_at) "
                 "VALUES (:id, 'manual', 'legacy', 0, 'by hand', :at)"),
            {"id": ids["paused"], "at": stamp},
        )
    await engine.dispose()
    return ids


async def job_rows(url: str) -> dict[str, str]:
    engine = create_engine(url)
    async with engine.connect() as connection:
        rows = {row.id: row.status for row in await connection.execute(text("SELECT id, status FROM jobs"))}
    await engine.dispose()
    return rows


async def test_0005_upgrades_jobs_of_the_previous_version_and_downgrades_back(database_url: str) -> None:
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, "0004")
    ids = await write_jobs_as_version_0004(database_url)
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
