"""Issue 8's end-to-end run, all real processes: breaker_svc, job_svc on PostgreSQL and four
worker processes (`python -m services.client.worker`) run 1,000 jobs whose handler calls a
provider through a guard. Mid-run the provider fails (a switch file the handler reads): its
breaker opens, the jobs that need it pause with no attempt spent, the provider recovers, the
breaker closes through its half-open trial, and every job completes exactly once (the handler
writes a completion log; job_svc's attempts stay 0)."""

import asyncio
import signal
from collections import Counter
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2

from services.client import JobClient
from services.client.jobs import job_request
from tests.support.polling import eventually
from tests.support.processes import ServiceProcess, free_port
from tests.support.worker import WorkerProcess

P = job_pb2
JOBS, WORKERS, PROVIDER = 1000, 4, "apollo"

BREAKER_ENV = {
    "BREAKER_STORE": "memory",
    "BREAKER_HEARTBEAT_S": "0.5",
    "BREAKER_TIMER_INTERVAL_S": "0.05",
    "BREAKER_DEFAULT_WINDOW_SIZE": "20",
    "BREAKER_DEFAULT_MINIMUM_CALLS": "10",
    "BREAKER_DEFAULT_FAILURE_RATE_THRESHOLD": "50",
    "BREAKER_DEFAULT_OPEN_WAIT_S": "0.5",
    "BREAKER_DEFAULT_HALF_OPEN_PERMITTED_CALLS": "3",
}
JOB_ENV = {"JOB_RETRY_BASE_S": "0.05", "JOB_RETRY_MAX_S": "0.5", "JOB_SWEEP_INTERVAL_S": "0.5"}

HANDLERS = '''
import asyncio
import os
from pathlib import Path

from services.client import Worker

worker = Worker(concurrency=16, claim_wait_s=5)
PROVIDER_DOWN = Path(os.environ["PROVIDER_DOWN_FILE"])
COMPLETIONS = Path(os.environ["COMPLETION_LOG"])


class ProviderError(Exception):
    pass


async def call_provider(lead):
    if PROVIDER_DOWN.exists():
        raise ProviderError("apollo answered 503")
    await asyncio.sleep(0.002)
    return {"lead": lead, "company": "Acme"}


@worker.handler("find_company")
async def find_company(job):
    async with job.guard("apollo"):
        found = await call_provider(job.payload["lead"])
    with COMPLETIONS.open("a") as log:  # one short O_APPEND write per job: lines never interleave
        log.write(job.id + "\\n")
    return found
'''


def completed_ids(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


async def watch_transitions(stub: breaker_pb2_grpc.BreakerServiceStub, seen: list[tuple[int, int]]) -> None:
    async for message in stub.WatchTransitions(breaker_pb2.WatchTransitionsRequest(dependencies=[PROVIDER])):
        if message.WhichOneof("event") == "transition":
            seen.append((message.transition.from_state, message.transition.to_state))


async def test_four_worker_processes_run_1000_jobs_through_an_outage_each_exactly_once(postgres_url: str, tmp_path: Path) -> None:
    breaker_port, job_port = free_port(), free_port()
    breakers = ServiceProcess("breaker_svc", breaker_port, {**BREAKER_ENV, "BREAKER_PORT": str(breaker_port)}, tmp_path)
    job_svc = ServiceProcess(
        "job_svc", job_port, {**JOB_ENV, "JOB_PORT": str(job_port), "BREAKER_TARGET": breakers.address, "JOB_DATABASE_URL": postgres_url}, tmp_path
    )
    (tmp_path / "handlers.py").write_text(HANDLERS)
    down, log = tmp_path / "provider-down", tmp_path / "completions.log"
    env = {"JOB_TARGET": job_svc.address, "BREAKER_TARGET": breakers.address, "PROVIDER_DOWN_FILE": str(down), "COMPLETION_LOG": str(log)}
    transitions: list[tuple[int, int]] = []
    # Everything starts at once (the workers retry until the services serve): start-up is most
    # of this test's time on a busy machine.
    workers = [WorkerProcess("handlers:worker", tmp_path, env, name=f"worker-{n}") for n in range(WORKERS)]
    try:
        await asyncio.gather(asyncio.to_thread(breakers.start, 90), asyncio.to_thread(job_svc.start, 90))
        async with JobClient(job_svc.address, tls=None) as jobs, grpc.aio.insecure_channel(breakers.address) as channel:
            watching = asyncio.create_task(watch_transitions(breaker_pb2_grpc.BreakerServiceStub(channel), transitions))
            created = await jobs.create_many([job_request("find_company", [PROVIDER], {"lead": n}) for n in range(JOBS)])

            async def some_done() -> bool:
                return len(completed_ids(log)) >= JOBS // 5

            await eventually(some_done, timeout_s=60)  # includes the workers starting up
            down.touch()  # the provider fails

            async def paused() -> int:
                return (await jobs.queue_status()).counts_by_status["paused"]

            paused_during_outage = await eventually(paused, timeout_s=20)
            done_during_outage = len(completed_ids(log))
            await asyncio.sleep(1.0)  # half-open trials fail against the failing provider
            down.unlink()  # it recovers

            async def all_done() -> bool:
                return (await jobs.queue_status()).counts_by_status["completed"] == JOBS

            await eventually(all_done, timeout_s=60, interval_s=0.2)
            for worker in workers:
                worker.process.send_signal(signal.SIGTERM)
            exits = [worker.process.wait(30) for worker in workers]
            final = await jobs.list_all()
            watching.cancel()
    finally:
        for worker in workers:
            worker.kill()
        job_svc.stop()
        breakers.stop()
    assert exits == [0] * WORKERS, [w.output()[-2000:] for w in workers]

    assert paused_during_outage > 0 and done_during_outage < JOBS
    assert (breaker_pb2.BREAKER_STATE_CLOSED, breaker_pb2.BREAKER_STATE_OPEN) in transitions
    assert transitions[-1] == (breaker_pb2.BREAKER_STATE_HALF_OPEN, breaker_pb2.BREAKER_STATE_CLOSED)
    assert {job.id for job in final} == {job.id for job in created}
    assert all(job.status == P.JOB_STATUS_COMPLETED and job.attempts == 0 for job in final)
    blamed = [job for job in final if "apollo answered 503" in job.last_error or "BreakerOpen" in job.last_error]
    assert blamed, "no job ever failed because of the provider"
    runs = Counter(completed_ids(log))
    assert set(runs) == {job.id for job in created} and set(runs.values()) == {1}
    assert all(job.result["company"] == "Acme" for job in final)

