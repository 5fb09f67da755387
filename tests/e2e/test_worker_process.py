"""A worker process under SIGTERM: it stops claiming at once, lets running handlers finish within
its grace period, sends their finishes and exits 0; a handler that outlives the grace period is
cancelled and its job left to its lease."""

import time
from pathlib import Path

from job.v1 import job_pb2

from services.client import JobClient
from tests.support.polling import eventually
from tests.support.worker import WorkerProcess

P = job_pb2

HANDLERS = '''
import asyncio
from pathlib import Path

from services.client import Worker

worker = Worker(concurrency=4, grace_s=3, lease_s=5)
STARTED = Path("started.log")


@worker.handler("quick")
async def quick(job):
    with STARTED.open("a") as log:
        log.write(job.id + "\\n")
    await asyncio.sleep(1.5)
    return {"finished": True}


@worker.handler("stuck")
async def stuck(job):
    with STARTED.open("a") as log:
        log.write(job.id + "\\n")
    await asyncio.sleep(600)
'''


async def test_sigterm_stops_claiming_drains_running_jobs_and_exits_0(service_process, tmp_path: Path) -> None:
    breakers = service_process("breaker_svc", {"BREAKER_STORE": "memory"}, port_env="BREAKER_PORT")
    jobs_svc = service_process(
        "job_svc", {"BREAKER_TARGET": breakers.address, "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}"}, port_env="JOB_PORT"
    )
    (tmp_path / "handlers.py").write_text(HANDLERS)
    worker = WorkerProcess("handlers:worker", tmp_path, {"JOB_TARGET": jobs_svc.address, "BREAKER_TARGET": breakers.address})
    try:
        async with JobClient(jobs_svc.address, tls=None) as jobs:
            quick = [await jobs.create("quick", ["perplexity"]) for _ in range(3)]
            stuck = await jobs.create("stuck", ["perplexity"])
            started = tmp_path / "started.log"

            async def all_started() -> bool:
                return len(_lines(started)) == 4

            await eventually(all_started, timeout_s=20)

            sent_at = time.monotonic()
            worker.process.send_signal(15)
            late = [await jobs.create("quick", ["perplexity"]) for _ in range(2)]  # while it drains
            assert worker.process.wait(15) == 0, worker.output()
            took_s = time.monotonic() - sent_at

            for job in quick:
                done = await jobs.get(job.id)
                assert done.status == P.JOB_STATUS_COMPLETED, done
            left = await jobs.get(stuck.id)
            assert left.status == P.JOB_STATUS_PROCESSING and left.lease_owner == "worker"  # left to its lease
            assert left.attempts == 0
            for job in late:
                assert (await jobs.get(job.id)).status == P.JOB_STATUS_PENDING
    finally:
        worker.kill()
    assert 2.5 < took_s < 10, took_s  # waited for the grace period (3 s) because of "stuck", no longer
    assert len(_lines(started)) == 4  # nothing claimed after SIGTERM


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
