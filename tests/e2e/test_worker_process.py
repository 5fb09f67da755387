"""Worker processes against the stack as `make run` starts it (`python -m services.stack`, on
free ports): README's "Writing a worker" run verbatim, and what SIGTERM does to a worker.

The README's module and command run as written, with the virtualenv on PATH (as
`. .venv/bin/activate` puts it) and the targets in JOB_TARGET and BREAKER_TARGET; the only
thing changed is the address in the grpcurl line that creates the job."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import json_format
from job.v1 import job_pb2

from services.client import JobClient
from tests.support.polling import eventually
from tests.support.processes import REPO, launch_stack
from tests.support.worker import WorkerProcess

P = job_pb2
VENV_BIN = Path(sys.executable).parent
SECTION = (REPO / "README.md").read_text().split("## Writing a worker", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", SECTION, re.S)


@dataclass(frozen=True)
class Stack:
    job_target: str
    breaker_target: str

    def env(self) -> dict[str, str]:
        return {"JOB_TARGET": self.job_target, "BREAKER_TARGET": self.breaker_target}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    launched = launch_stack(tmp_path_factory.mktemp("stack"))
    process = launched.process
    try:
        yield Stack(launched.target("JOB_PORT"), launched.target("BREAKER_PORT"))
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def block(language: str, containing: str) -> str:
    found = [text for lang, text in BLOCKS if lang == language and containing in text]
    assert len(found) == 1, f"expected one {language} block with {containing!r} in the README's worker section"
    return found[0]


def first_command(script: str) -> list[str]:
    return shlex.split(script.replace("\\\n", " ").splitlines()[0], comments=True)


async def test_the_readme_worker_runs_verbatim(stack: Stack, tmp_path: Path) -> None:
    (tmp_path / "leads_worker.py").write_text(block("python", "# leads_worker.py"))
    env = {**os.environ, **stack.env(), "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    command = first_command(block("sh", "services.client.worker"))  # looked up on env's PATH, as a shell would
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        create = first_command(block("sh", "job.v1.JobService/CreateJob"))
        create = [stack.job_target if arg == "localhost:50053" else arg for arg in create]
        created = subprocess.run(create, capture_output=True, text=True, timeout=30, env=env)
        assert created.returncode == 0, created.stderr
        job_id = json.loads(created.stdout)["job"]["id"]

        async with JobClient(stack.job_target, tls=None) as jobs:
            async def completed() -> job_pb2.Job | None:
                job = await jobs.get(job_id)
                return job if job.status == P.JOB_STATUS_COMPLETED else None

            job = await eventually(completed, timeout_s=30)
        assert json_format.MessageToDict(job.result) == {"company": {"domain": "example.com", "employees": 42}}
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
    assert "worker_stopped" in (tmp_path / "worker.log").read_text()


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


async def test_sigterm_stops_claiming_drains_running_jobs_and_exits_0(stack: Stack, tmp_path: Path) -> None:
    """Handlers running at SIGTERM finish within the grace period and their results are sent;
    one that outlives it is cancelled and its job left to its lease; nothing is claimed after."""
    (tmp_path / "handlers.py").write_text(HANDLERS)
    worker = WorkerProcess("handlers:worker", tmp_path, stack.env(), name="drained")
    started = tmp_path / "started.log"
    try:
        async with JobClient(stack.job_target, tls=None) as jobs:
            quick = [await jobs.create("quick", ["perplexity"]) for _ in range(3)]
            stuck = await jobs.create("stuck", ["perplexity"])

            async def all_started() -> bool:
                return len(_lines(started)) == 4

            await eventually(all_started, timeout_s=30)
            sent_at = time.monotonic()
            worker.process.send_signal(signal.SIGTERM)
            late = [await jobs.create("quick", ["perplexity"]) for _ in range(2)]  # while it drains
            assert worker.process.wait(15) == 0, worker.output()
            took_s = time.monotonic() - sent_at

            for job in quick:
                assert (await jobs.get(job.id)).status == P.JOB_STATUS_COMPLETED
            left = await jobs.get(stuck.id)
            assert (left.status, left.lease_owner, left.attempts) == (P.JOB_STATUS_PROCESSING, "drained", 0)  # left to its lease
            for job in late:
                assert (await jobs.get(job.id)).status == P.JOB_STATUS_PENDING
    finally:
        worker.kill()
    assert 2.5 < took_s < 10, took_s  # waited out the grace period (3 s) for "stuck", no longer
    assert len(_lines(started)) == 4  # nothing claimed after SIGTERM


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []
