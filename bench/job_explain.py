"""EXPLAIN at scale: the plans PostgreSQL gives every statement job_svc runs, on a table of
1,000,000 jobs, with every Seq Scan of a large table flagged.

A throw-away database is migrated and filled with set-based SQL (generate_series): a mix of
statuses (70 % completed, 5 % failed, 3 % cancelled, 18 % pending of which a tenth scheduled
later, 4 % processing of which half with an expired lease), 12 providers (a quarter of the
jobs call two), 500 campaigns, priorities, request ids, creation times over 7 days and 4 hours
(so the retention delete, 7 days by default, has ~2 % to do); then VACUUM ANALYZE. A breaker
opening on one provider and a manual pause of another hold their queued jobs (through job_svc's
own code).

job_svc then runs in this process on port 0 with auto_explain loaded on each of its
connections (ANALYZE and BUFFERS, every statement, the plans sent back as notices), and the
script makes every call over real gRPC: CreateJob(s), ClaimJobs with and without filters,
CompleteJob, FailJob, FinishJobs, RenewLeases, CancelJob, GetJob, RedriveJobs, ListJobs pages
under each filter, GetQueueStatus, PauseJobs/ResumeJobs, and the mirror applying OPEN,
HALF_OPEN and CLOSED to a provider with ~80,000 jobs; the lease sweeper and the retention
delete run in the background meanwhile. All of it twice: once with custom plans (planned for
the actual parameters) and once with generic plans (what a prepared statement may settle on
after five runs, asyncpg preparing every statement). Calls the running job_svc does not serve
are listed as such.

    .venv/bin/python -m bench.job_explain              # ~3 min; --jobs 100000 for a quick look
"""

import argparse
import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from job.v1 import job_pb2, job_pb2_grpc
from sqlalchemy import event

from bench.common import print_table
from job_svc.app import MIGRATIONS_DIR, JobApp
from services.db import upgrade_schema
from services.logging import configure_logging
from services.watch import BreakerState, Transition
from tests.support.databases import fresh_postgres_database
from tests.support.job import job_settings

PROVIDERS = [f"p{i:02d}" for i in range(12)]
OPENED, MANUAL, TRIAL = "p03", "p07", "p05"  # open throughout; paused by an operator; opened, tried and closed per pass
BIG_TABLES = {"jobs", "job_dependencies", "job_holds"}
JOB_TABLES = BIG_TABLES | {"job_pauses", "breaker_outbox", "breaker_states", "breaker_watch_cursor"}
AUTO_EXPLAIN = {
    "log_min_duration": "0", "log_analyze": "on", "log_buffers": "on", "log_timing": "on",
    "log_format": "json", "log_level": "notice",
}
LEASE = Duration(seconds=300)

FILL_JOBS = """
INSERT INTO jobs (id, campaign_id, job_type, payload, status, attempts, max_attempts, lease_owner, lease_expires_at,
                  run_after, last_error, request_id, created_at, updated_at{priority_column})
SELECT md5('job' || g)::uuid::text,
       CASE WHEN g % 10 < 3 THEN md5('campaign' || g % 500)::uuid::text END,
       (ARRAY['enrich', 'score', 'sync', 'notify'])[1 + g % 4],
       jsonb_build_object('n', g, 'source', 'bench'),
       s.status::job_status,
       CASE s.status WHEN 'failed' THEN 3 WHEN 'pending' THEN g % 2 ELSE 1 END,
       3,
       CASE WHEN s.status = 'processing' THEN 'worker-' || g % 20 END,
       CASE WHEN s.status = 'processing' THEN now() + CASE WHEN g % 2 = 0 THEN interval '-1 minute' ELSE interval '5 minutes' END END,
       CASE WHEN s.status = 'pending' AND g % 10 = 0 THEN now() + (g % 3600) * interval '1 second' ELSE t.created END,
       CASE WHEN s.status = 'failed' THEN 'provider said no' ELSE '' END,
       CASE WHEN g % 2 = 0 THEN 'req-' || g END,
       t.created,
       CASE WHEN s.status IN ('completed', 'failed', 'cancelled') THEN t.created + interval '1 minute' ELSE t.created END
       {priority_value}
FROM generate_series(1, $1::int) AS g,
     LATERAL (SELECT CASE WHEN g % 100 < 70 THEN 'completed' WHEN g % 100 < 75 THEN 'failed' WHEN g % 100 < 78 THEN 'cancelled'
                          WHEN g % 100 < 96 THEN 'pending' ELSE 'processing' END AS status) AS s,
     LATERAL (SELECT now() - (1 - g::float8 / $1::int) * interval '7 days 4 hours' AS created) AS t
"""
FILL_DEPENDENCIES = """
INSERT INTO job_dependencies (job_id, dependency)
SELECT md5('job' || g)::uuid::text, 'p' || lpad((g % 12)::text, 2, '0') FROM generate_series(1, $1::int) AS g
UNION ALL
SELECT md5('job' || g)::uuid::text, 'p' || lpad(((g % 12 + 5) % 12)::text, 2, '0') FROM generate_series(4, $1::int, 4) AS g
"""


async def fill(url: str, jobs: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        has_priority = await connection.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'jobs' AND column_name = 'priority'"
        )
        columns = {"priority_column": ", priority", "priority_value": ", (g * 7) % 11 - 5"} if has_priority else {"priority_column": "", "priority_value": ""}
        started = time.perf_counter()
        await connection.execute(FILL_JOBS.format(**columns), jobs)
        await connection.execute(FILL_DEPENDENCIES, jobs)
        await connection.execute("VACUUM ANALYZE")
        counts = await connection.fetch("SELECT status::text, count(*) FROM jobs GROUP BY 1 ORDER BY 1")
        print(f"filled {jobs:,} jobs in {time.perf_counter() - started:.0f} s: " + ", ".join(f"{r[0]} {r[1]:,}" for r in counts))
    finally:
        await connection.close()


# -- plans -----------------------------------------------------------------------------------


@dataclass
class Plan:
    statement: str
    phases: set[str]
    ms: float
    plan: dict[str, Any]


@dataclass
class Plans:
    """The plans auto_explain sends back, per statement (the slowest run of each)."""

    phase: str = "setup"
    by_statement: dict[str, Plan] = field(default_factory=dict)

    def on_notice(self, _connection: object, message: Any) -> None:
        text = message.message
        if not text.startswith("duration:") or "plan:" not in text:
            return
        explained = json.loads(text.split("plan:", 1)[1])
        statement = " ".join(explained["Query Text"].split())
        if not JOB_TABLES & set(re.findall(r"\w+", statement)):
            return  # the driver's own queries (type introspection, settings)
        ms = explained["Plan"].get("Actual Total Time", 0.0)
        known = self.by_statement.get(statement)
        if known is None:
            self.by_statement[statement] = Plan(statement, {self.phase}, ms, explained["Plan"])
            return
        known.phases.add(self.phase)
        if ms > known.ms:
            known.ms, known.plan = ms, explained["Plan"]


def nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    found = [plan]
    for child in plan.get("Plans", []):
        found += nodes(child)
    return found


def access_paths(plan: dict[str, Any]) -> list[str]:
    paths = []
    for node in nodes(plan):
        if "Relation Name" not in node:
            continue
        kind = node["Node Type"]
        where = f" using {node['Index Name']}" if "Index Name" in node else ""
        paths.append(f"{kind}{where} on {node['Relation Name']} ({node.get('Actual Rows', 0) * node.get('Actual Loops', 1):,.0f} rows)")
    return paths


def seq_scans(plan: dict[str, Any]) -> list[str]:
    return [n["Relation Name"] for n in nodes(plan) if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in BIG_TABLES]


def tree(plan: dict[str, Any], depth: int = 0) -> list[str]:
    node = plan
    label = node["Node Type"] + (f" using {node['Index Name']}" if "Index Name" in node else "")
    label += f" on {node['Relation Name']}" if "Relation Name" in node else ""
    details = [f"{key}: {node[key]}" for key in ("Index Cond", "Filter", "Hash Cond", "Join Filter") if key in node]
    rows = node.get("Actual Rows", 0) * node.get("Actual Loops", 1)
    buffers = node.get("Shared Hit Blocks", 0) + node.get("Shared Read Blocks", 0)
    lines = [f"{'  ' * depth}-> {label}  (rows {rows:,.0f}, {node.get('Actual Total Time', 0):.1f} ms, {buffers:,} buffers) {'; '.join(details)}"]
    for child in node.get("Plans", []):
        lines += tree(child, depth + 1)
    return lines


def report(mode: str, plans: Plans, unserved: list[str]) -> list[Plan]:
    print(f"\n== {mode} plans: {len(plans.by_statement)} statements (slowest run of each)\n")
    rows, flagged = [], []
    for plan in sorted(plans.by_statement.values(), key=lambda p: -p.ms):
        scans = seq_scans(plan.plan)
        if scans:
            flagged.append(plan)
        rows.append([
            ", ".join(sorted(plan.phases))[:48], plan.ms, plan.statement[:70], "; ".join(access_paths(plan.plan))[:150],
            "SEQ SCAN " + ",".join(sorted(set(scans))) if scans else "",
        ])
    print_table(["calls", "ms", "statement", "access", "flag"], rows)
    if unserved:
        print(f"\nnot served by this job_svc: {', '.join(unserved)}")
    return flagged


# -- the calls -------------------------------------------------------------------------------


@dataclass
class Caller:
    stub: job_pb2_grpc.JobServiceStub
    plans: Plans
    unserved: list[str] = field(default_factory=list)

    async def __call__(self, phase: str, rpc: Callable[[Any], Awaitable[Any]], request: Any) -> Any:
        self.plans.phase = phase
        try:
            return await rpc(request, timeout=60)
        except grpc.aio.AioRpcError as error:
            if error.code() in (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.INTERNAL):
                self.unserved.append(phase)
            else:
                print(f"  {phase}: {error.code().name} {error.details()}")
            return None
        finally:
            self.plans.phase = "background (sweeper, retention)"


def new_job(n: int, dependencies: list[str], **fields: Any) -> job_pb2.CreateJobRequest:
    return job_pb2.CreateJobRequest(job_type="enrich", dependencies=dependencies, **fields)


async def every_call(call: Caller, app: JobApp, revision: int) -> int:
    """Each RPC once or a few times, the mirror's three transitions; returns the next revision."""
    s = call.stub
    await call("CreateJob", s.CreateJob, new_job(0, ["p01"]))
    await call("CreateJob (request_id)", s.CreateJob, new_job(0, ["p01", "p02"], request_id=f"explain-{revision}"))
    await call("CreateJob (request_id)", s.CreateJob, new_job(0, ["p01", "p02"], request_id=f"explain-{revision}"))
    await call("CreateJob (breaker open)", s.CreateJob, new_job(0, [OPENED]))
    await call("CreateJobs", s.CreateJobs, job_pb2.CreateJobsRequest(jobs=[new_job(i, [PROVIDERS[i % 12]]) for i in range(100)]))
    claim = job_pb2.ClaimJobsRequest(worker_id="explain", max_jobs=10, lease_duration=LEASE)
    claimed = await call("ClaimJobs", s.ClaimJobs, claim)
    filtered = job_pb2.ClaimJobsRequest(worker_id="explain", max_jobs=10, lease_duration=LEASE, dependencies=["p01", "p02"])
    claimed_more = await call("ClaimJobs (dependencies)", s.ClaimJobs, filtered)
    by_type = job_pb2.ClaimJobsRequest(worker_id="explain", max_jobs=10, lease_duration=LEASE, job_type="score")
    claimed_typed = await call("ClaimJobs (job_type)", s.ClaimJobs, by_type)
    held = [j for r in (claimed, claimed_more, claimed_typed) if r for j in r.jobs]
    ids = [j.id for j in held]
    if len(ids) >= 6:
        await call("RenewLeases", s.RenewLeases, job_pb2.RenewLeasesRequest(worker_id="explain", ids=ids, lease_duration=LEASE))
        await call("CompleteJob", s.CompleteJob, job_pb2.CompleteJobRequest(id=ids[0], worker_id="explain"))
        await call("FailJob", s.FailJob, job_pb2.FailJobRequest(id=ids[1], worker_id="explain", error="job fault"))
        await call("FailJob (provider)", s.FailJob, job_pb2.FailJobRequest(id=ids[2], worker_id="explain", error="down", failed_dependency=held[2].dependencies[0]))
        finishes = [job_pb2.JobFinish(id=i, completion=job_pb2.JobCompletion()) for i in ids[3:]]
        await call("FinishJobs", s.FinishJobs, job_pb2.FinishJobsRequest(worker_id="explain", finishes=finishes))
        await call("GetJob", s.GetJob, job_pb2.GetJobRequest(id=ids[0]))
    pending = await call("ListJobs (status)", s.ListJobs, job_pb2.ListJobsRequest(status=job_pb2.JOB_STATUS_PENDING, page_size=50))
    if pending and pending.jobs:
        await call("CancelJob", s.CancelJob, job_pb2.CancelJobRequest(id=pending.jobs[-1].id))
        await call("RedriveJobs", s.RedriveJobs, job_pb2.RedriveJobsRequest(ids=[pending.jobs[-1].id]))
    await list_pages(call)
    await call("GetQueueStatus", s.GetQueueStatus, job_pb2.GetQueueStatusRequest())
    await call("RedriveJobs (failed, by type)", s.RedriveJobs, job_pb2.RedriveJobsRequest(status=job_pb2.JOB_STATUS_FAILED, job_type="sync"))
    campaign = await call("ListJobs (first page)", s.ListJobs, job_pb2.ListJobsRequest(page_size=1))
    campaign_id = next((j.campaign_id for j in campaign.jobs if j.campaign_id), "") if campaign else ""
    if campaign_id:
        await call("PauseJobs (campaign)", s.PauseJobs, job_pb2.PauseJobsRequest(campaign_id=campaign_id, reason="explain"))
        await call("ResumeJobs (campaign)", s.ResumeJobs, job_pb2.ResumeJobsRequest(campaign_id=campaign_id))
    for old, new in ((BreakerState.CLOSED, BreakerState.OPEN), (BreakerState.OPEN, BreakerState.HALF_OPEN), (BreakerState.HALF_OPEN, BreakerState.CLOSED)):
        call.plans.phase = f"mirror {old.value} -> {new.value}"
        await app.mirror.apply_transition(Transition(revision, TRIAL, old, new, 3, "explain"))
        revision += 1
    call.plans.phase = "background (sweeper, retention)"
    await asyncio.sleep(3)  # a few sweeper passes and a retention pass on their own
    return revision


async def list_pages(call: Caller) -> None:
    s = call.stub
    filters = {
        "ListJobs": {}, "ListJobs (status)": {"status": job_pb2.JOB_STATUS_PAUSED}, "ListJobs (dependency)": {"dependency": "p01"},
        "ListJobs (job_type)": {"job_type": "sync"}, "ListJobs (status+dependency)": {"status": job_pb2.JOB_STATUS_PENDING, "dependency": "p02"},
    }
    for phase, where in filters.items():
        first = await call(phase, s.ListJobs, job_pb2.ListJobsRequest(page_size=100, **where))
        if first and first.next_page_token:
            await call(phase, s.ListJobs, job_pb2.ListJobsRequest(page_size=100, page_token=first.next_page_token, **where))
    campaign_id = "00000000-0000-0000-0000-000000000000"
    campaign = await call("ListJobs (campaign)", s.ListJobs, job_pb2.ListJobsRequest(page_size=100, status=job_pb2.JOB_STATUS_COMPLETED))
    if campaign:
        campaign_id = next((j.campaign_id for j in campaign.jobs if j.campaign_id), campaign_id)
    await call("ListJobs (campaign)", s.ListJobs, job_pb2.ListJobsRequest(page_size=100, campaign_id=campaign_id))


# -- the run ---------------------------------------------------------------------------------


def explaining(app: JobApp, plans: Plans, plan_cache_mode: str) -> None:
    """Every connection of the app's pool loads auto_explain and sends its plans here."""

    @event.listens_for(app.engine.sync_engine, "connect")
    def load_auto_explain(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("LOAD 'auto_explain'")
        for name, value in AUTO_EXPLAIN.items():
            cursor.execute(f"SET auto_explain.{name} = '{value}'")
        cursor.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        cursor.close()
        dbapi_connection.driver_connection.add_log_listener(plans.on_notice)


async def one_pass(url: str, plan_cache_mode: str, revision: int, setup: bool) -> tuple[Plans, list[str], int]:
    plans = Plans()
    app = JobApp(job_settings(url, sweep_interval_s=0.5))
    explaining(app, plans, plan_cache_mode)
    port = await app.start(follow_breakers=False, forward_outcomes=False, housekeeping=True)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = Caller(job_pb2_grpc.JobServiceStub(channel), plans)
            if setup:
                plans.phase = f"setup: {OPENED} opens"
                await app.mirror.apply_transition(Transition(revision, OPENED, BreakerState.CLOSED, BreakerState.OPEN, 3, "explain"))
                revision += 1
                await call(f"setup: PauseJobs ({MANUAL})", call.stub.PauseJobs, job_pb2.PauseJobsRequest(dependency=MANUAL, reason="explain"))
            revision = await every_call(call, app, revision)
            if setup:
                await call(f"ResumeJobs ({MANUAL})", call.stub.ResumeJobs, job_pb2.ResumeJobsRequest(dependency=MANUAL))
                await call(f"PauseJobs ({MANUAL})", call.stub.PauseJobs, job_pb2.PauseJobsRequest(dependency=MANUAL, reason="explain"))
    finally:
        await app.stop()
    return plans, sorted(set(call.unserved)), revision


async def main(jobs: int) -> None:
    # Critical only: the calls a job_svc does not serve yet log an error with a traceback.
    configure_logging("bench", "critical")
    async with fresh_postgres_database() as url:
        await upgrade_schema(url, MIGRATIONS_DIR)
        await fill(url, jobs)
        flagged: list[tuple[str, Plan]] = []
        revision = 1
        for number, mode in enumerate(("force_custom_plan", "force_generic_plan")):
            started = time.perf_counter()
            plans, unserved, revision = await one_pass(url, mode, revision, setup=number == 0)
            print(f"\n{mode}: {time.perf_counter() - started:.0f} s")
            flagged += [(mode, plan) for plan in report(mode, plans, unserved)]
    print(f"\n== {len(flagged)} plans with a Seq Scan of {', '.join(sorted(BIG_TABLES))}")
    for mode, plan in flagged:
        print(f"\n[{mode}] {', '.join(sorted(plan.phases))}: {plan.ms:.1f} ms\n  {plan.statement[:1500]}")
        print("\n".join("  " + line for line in tree(plan.plan)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.job_explain", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1_000_000, help="jobs in the table (default 1000000)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args().jobs))
