"""README's "Writing a worker", verbatim: its module and its command run against the stack as
`make run` starts it (on free ports: the targets come from JOB_TARGET and BREAKER_TARGET, and
the grpcurl line's address is the one thing changed), with the virtualenv on PATH as
`. .venv/bin/activate` puts it."""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from google.protobuf import json_format
from job.v1 import job_pb2

from services.client import JobClient
from tests.support.polling import eventually
from tests.support.processes import REPO, ServiceProcess, free_port

SECTION = (REPO / "README.md").read_text().split("## Writing a worker", 1)[1].split("\n## ", 1)[0]
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", SECTION, re.S)
VENV_BIN = Path(sys.executable).parent


def block(language: str, containing: str) -> str:
    found = [text for lang, text in BLOCKS if lang == language and containing in text]
    assert len(found) == 1, f"expected one {language} block with {containing!r} in the README's worker section"
    return found[0]


def first_command(script: str) -> list[str]:
    return shlex.split(script.replace("\\\n", " ").splitlines()[0], comments=True)


async def test_the_readme_worker_runs_verbatim_against_the_stack(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("BREAKER_PORT", "CAMPAIGN_PORT", "JOB_PORT")}
    stack_env = {**os.environ, **ports,
                 "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}",
                 "CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}"}
    job_target, breaker_target = f"127.0.0.1:{ports['JOB_PORT']}", f"127.0.0.1:{ports['BREAKER_PORT']}"
    with (tmp_path / "stack.log").open("w") as log:
        stack = subprocess.Popen([sys.executable, "-m", "services.stack"], cwd=REPO, env=stack_env, stdout=log, stderr=subprocess.STDOUT)
    worker = None
    try:
        for port_env in ("BREAKER_PORT", "JOB_PORT"):
            ServiceProcess("stack", int(ports[port_env]), {}, tmp_path).wait_serving(60)

        folder = tmp_path / "project"
        folder.mkdir()
        (folder / "leads_worker.py").write_text(block("python", "# leads_worker.py"))
        env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "JOB_TARGET": job_target, "BREAKER_TARGET": breaker_target}
        command = first_command(block("sh", "services.client.worker"))
        command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]  # what the shell would run
        with (tmp_path / "worker.log").open("w") as log:
            worker = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)

        create = first_command(block("sh", "job.v1.JobService/CreateJob"))
        create = [str(VENV_BIN / "grpcurl") if a == "grpcurl" else job_target if a == "localhost:50053" else a for a in create]
        created = subprocess.run(create, capture_output=True, text=True, timeout=30, env=env)
        assert created.returncode == 0, created.stderr
        job_id = json.loads(created.stdout)["job"]["id"]

        async with JobClient(job_target, tls=None) as jobs:
            async def completed() -> job_pb2.Job | None:
                job = await jobs.get(job_id)
                return job if job.status == job_pb2.JOB_STATUS_COMPLETED else None

            job = await eventually(completed, timeout_s=30)
        assert json_format.MessageToDict(job.result) == {"company": {"domain": "example.com", "employees": 42}}

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        stack.send_signal(signal.SIGTERM)
        try:
            stack.wait(30)
        except subprocess.TimeoutExpired:
            stack.kill()
    assert "worker_stopped" in (tmp_path / "worker.log").read_text()
