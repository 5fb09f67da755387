"""job_svc on a fresh PostgreSQL database: 20,000 pending jobs of one dependency, then the time
the breaker mirror takes to apply OPEN (hold + pause), HALF_OPEN (release the trial permits)
and CLOSED (resume), with the SQL statements each ran; then the pause (the mirror applying
OPEN, its whole transaction) and the resume (CLOSED) side by side with a bare UPDATE of the
same rows (status only, in its own transaction), interleaved rounds, every one on freshly
vacuumed tables, as ratios; then ClaimJobs throughput with two workers claiming concurrently
over real gRPC, under three states of the planner's statistics: none yet (a fresh bulk load;
autovacuum is off on the bench machine), after ANALYZE alone (the 20,000 deleted breaker
holds not vacuumed yet), and after VACUUM ANALYZE.

    .venv/bin/python -m bench.job_pause     # about 30 s; PostgreSQL at 127.0.0.1:5432
"""

import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import grpc
from google.protobuf.duration_pb2 import Duration
from job.v1 import job_pb2, job_pb2_grpc
from sqlalchemy import event, insert, update

from bench.common import SERVER, p50_p99_ms, print_table, quiet_logs
from tests.support.databases import fresh_postgres_database
from job_svc.app import JobApp
from job_svc.domain import JobStatus, RetryPolicy
from job_svc.holds import jobs_of_dependency
from job_svc.settings import JobSettings
from job_svc.tables import job_dependencies, jobs
from services.watch import BreakerState, Transition

JOBS = 20_000
DEPENDENCY = "openai"
PERMITS = 3
WORKERS = 2
CLAIM_BATCH = 10
CLAIM_FOR_S = 3.0  # per statistics state; a claim under way then still finishes...
CLAIM_TIMEOUT_S = 5.0  # ...or hits this deadline, and its worker stops
RATIO_ROUNDS = 5
STATISTICS = [("none (as loaded)", None), ("ANALYZE, not vacuumed", "ANALYZE"), ("VACUUM ANALYZE", "VACUUM ANALYZE")]


def settings(database_url: str) -> JobSettings:
    return JobSettings(
        server=SERVER, database_url=database_url, breaker_target="127.0.0.1:9",  # unused: this script drives the mirror
        breaker_stale_after_s=30.0, retry_policy=RetryPolicy(base_s=1.0, max_s=300.0), max_payload_bytes=65536,
        sweep_interval_s=1.0, outbox_batch=200, outbox_retry_max_s=10.0,
    )


async def insert_pending(app: JobApp) -> None:
    """JOBS pending jobs of DEPENDENCY, oldest first, in a few multi-row INSERTs."""
    now = app.jobs.clock()
    rows = [
        {
            "id": str(uuid.uuid4()), "campaign_id": None, "job_type": "enrich", "payload": {"n": i}, "status": JobStatus.PENDING,
            "attempts": 0, "max_attempts": 3, "lease_owner": None, "lease_expires_at": None, "run_after": now, "last_error": "",
            "request_id": None, "created_at": now - timedelta(microseconds=JOBS - i), "updated_at": now,
        }
        for i in range(JOBS)
    ]
    async with app.engine.begin() as connection:
        await connection.execute(insert(jobs), rows)
        await connection.execute(insert(job_dependencies), [{"job_id": r["id"], "dependency": DEPENDENCY} for r in rows])


async def counts(app: JobApp) -> dict[str, int]:
    async with app.store.transaction() as tx:
        return {s.value: n for s, n in (await tx.counts_by_dependency()).get(DEPENDENCY, {}).items()}


def label(sql: str) -> str:
    """'UPDATE jobs', 'INSERT job_holds', 'SELECT breaker_states', 'WITH (UPDATE jobs, ...)'."""
    verb = sql.split(None, 1)[0].upper()
    if verb == "WITH":
        changes = re.findall(r"\b(UPDATE|INSERT INTO|DELETE FROM)\s+(\w+)", sql, re.IGNORECASE)
        return "WITH (" + ", ".join(f"{change.split()[0].upper()} {table}" for change, table in changes) + ")"
    table = re.search(r"\b(?:INTO|UPDATE|FROM)\s+(\w+)", sql, re.IGNORECASE)
    return f"{verb} {table.group(1) if table else '?'}"


async def apply(app: JobApp, statements: list[str], revision: int, old: BreakerState, new: BreakerState) -> tuple[list[object], str]:
    """One transition through the mirror, as the breaker stream would deliver it; its table row
    and the statements it ran."""
    statements.clear()
    started = time.perf_counter()
    await app.mirror.apply_transition(Transition(revision, DEPENDENCY, old, new, PERMITS, "bench"))
    elapsed_ms = (time.perf_counter() - started) * 1000
    ran = ", ".join(statements)
    return [f"{old.value} -> {new.value}", elapsed_ms, len(statements), counts_text(await counts(app))], ran


async def vacuum(app: JobApp) -> None:
    """Every timed change starts from the same tables: no dead rows left by the one before."""
    async with app.engine.connect() as connection:
        await (await connection.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql("VACUUM jobs, job_holds")


async def timed(app: JobApp, change: Callable[[], Awaitable[object]]) -> float:
    await vacuum(app)
    started = time.perf_counter()
    await change()
    return time.perf_counter() - started


async def bare_update(app: JobApp, before: JobStatus, after: JobStatus) -> None:
    """What the pause is measured against: the same rows' status changed, nothing else."""
    async with app.engine.begin() as connection:
        statement = update(jobs).where(jobs.c.status == before, jobs_of_dependency(DEPENDENCY))
        await connection.execute(statement.values(status=after, updated_at=app.jobs.clock()))


async def against_bare_update(app: JobApp, revision: int) -> tuple[list[list[object]], int]:
    """RATIO_ROUNDS rounds, alternating which goes first: the mirror applying OPEN then CLOSED,
    and bare UPDATEs pending -> paused -> pending of the same rows. The table rows and the
    next free revision."""
    seconds: dict[str, list[float]] = {name: [] for name in ("pause", "bare pause", "resume", "bare resume")}

    async def mirror() -> None:
        nonlocal revision
        opening = Transition(revision, DEPENDENCY, BreakerState.CLOSED, BreakerState.OPEN, PERMITS, "bench")
        closing = Transition(revision + 1, DEPENDENCY, BreakerState.OPEN, BreakerState.CLOSED, PERMITS, "bench")
        revision += 2
        seconds["pause"].append(await timed(app, lambda: app.mirror.apply_transition(opening)))
        seconds["resume"].append(await timed(app, lambda: app.mirror.apply_transition(closing)))

    async def bare() -> None:
        seconds["bare pause"].append(await timed(app, lambda: bare_update(app, JobStatus.PENDING, JobStatus.PAUSED)))
        seconds["bare resume"].append(await timed(app, lambda: bare_update(app, JobStatus.PAUSED, JobStatus.PENDING)))

    for round_ in range(RATIO_ROUNDS):
        for run in (mirror, bare) if round_ % 2 == 0 else (bare, mirror):
            await run()
            assert await counts(app) == {JobStatus.PENDING.value: JOBS}, "a round did not end with every job pending"
    rows = []
    for change in ("pause", "resume"):
        ours, theirs = seconds[change], seconds[f"bare {change}"]
        ratios = [a / b for a, b in zip(ours, theirs)]
        rows.append([
            change, statistics.median(ours) * 1000, statistics.median(theirs) * 1000,
            f"{statistics.median(ratios):.2f} ({min(ratios):.2f}..{max(ratios):.2f})",
        ])
    return rows, revision


def counts_text(by_status: dict[str, int]) -> str:
    return " ".join(f"{status} {n:,}" for status, n in sorted(by_status.items()))


async def worker(
    stub: job_pb2_grpc.JobServiceStub, name: str, deadline: float, state_claimed: list[int]
) -> tuple[list[float], list[str], bool]:
    """Claims until `deadline`, the queue is empty or the state's share of the jobs is claimed
    (`state_claimed`, shared by its workers); latencies, jobs claimed, whether a call hit
    CLAIM_TIMEOUT_S (which ends the worker)."""
    request = job_pb2.ClaimJobsRequest(worker_id=name, dependencies=[DEPENDENCY], max_jobs=CLAIM_BATCH, lease_duration=Duration(seconds=300))
    latencies, claimed = [], []
    while time.perf_counter() < deadline and state_claimed[0] < JOBS // len(STATISTICS):
        started = time.perf_counter()
        try:
            response = await stub.ClaimJobs(request, timeout=CLAIM_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
            latencies.append(time.perf_counter() - started)
            return latencies, claimed, True
        latencies.append(time.perf_counter() - started)
        if not response.jobs:
            break
        claimed.extend(job.id for job in response.jobs)
        state_claimed[0] += len(response.jobs)
    return latencies, claimed, False


async def claims(stub: job_pb2_grpc.JobServiceStub, name: str, claimed: list[str]) -> list[object]:
    """WORKERS workers claiming at once for CLAIM_FOR_S, or until they have a third of the jobs
    (each state of the statistics gets its share of the queue); the table row. Adds to `claimed`."""
    started, state_claimed = time.perf_counter(), [0]
    results = await asyncio.gather(*(worker(stub, f"w{i}", started + CLAIM_FOR_S, state_claimed) for i in range(WORKERS)))
    wall = time.perf_counter() - started
    latencies = [latency for run, _, _ in results for latency in run]
    jobs_claimed = [job_id for _, ids, _ in results for job_id in ids]
    claimed.extend(jobs_claimed)
    timeouts = sum(timed_out for _, _, timed_out in results)
    rates = [len(latencies) / wall, len(jobs_claimed) / wall]
    return [name, len(latencies), timeouts, len(jobs_claimed), f"{wall:.1f}", *rates, *p50_p99_ms(latencies)]


async def main() -> None:
    quiet_logs()
    async with fresh_postgres_database() as url:
        app = JobApp(settings(url))
        port = await app.start(follow_breakers=False, forward_outcomes=False, housekeeping=False)
        statements: list[str] = []
        event.listen(app.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(label(args[2])))
        try:
            started = time.perf_counter()
            await insert_pending(app)
            inserted_s = time.perf_counter() - started
            print(f"inserted {JOBS:,} pending jobs of {DEPENDENCY!r} in {inserted_s:.2f} s: {counts_text(await counts(app))}\n")
            phases = [
                await apply(app, statements, 1, BreakerState.CLOSED, BreakerState.OPEN),
                await apply(app, statements, 2, BreakerState.OPEN, BreakerState.HALF_OPEN),
                await apply(app, statements, 3, BreakerState.HALF_OPEN, BreakerState.CLOSED),
            ]
            print_table(["transition applied", "ms", "statements", f"jobs of {DEPENDENCY} after"], [row for row, _ in phases])
            for row, ran in phases:
                print(f"  {row[0]}: {ran}")

            ratio_rows, _ = await against_bare_update(app, revision=4)
            print(f"\n{JOBS:,} jobs paused and resumed by the mirror vs a bare UPDATE of the same rows, {RATIO_ROUNDS} interleaved rounds")
            print_table(["change", "mirror ms (median)", "bare UPDATE ms (median)", "ratio, median (min..max)"], ratio_rows)

            rows, claimed = [], []
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = job_pb2_grpc.JobServiceStub(channel)
                for name, maintenance in STATISTICS:
                    if maintenance:
                        async with app.engine.connect() as connection:
                            await (await connection.execution_options(isolation_level="AUTOCOMMIT")).exec_driver_sql(maintenance)
                    rows.append(await claims(stub, name, claimed))
        finally:
            await app.stop()
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    print(
        f"\nClaimJobs: {WORKERS} workers claiming {CLAIM_BATCH} at a time for {CLAIM_FOR_S:.0f} s or {JOBS // len(STATISTICS):,} jobs"
        f" per state, {CLAIM_TIMEOUT_S:.0f} s deadline per call"
    )
    print_table(["planner statistics", "calls", "timed out", "jobs", "wall s", "calls/s", "jobs/s", "p50 ms", "p99 ms"], rows)


if __name__ == "__main__":
    asyncio.run(main())
