"""`make run`'s launcher: the three services as one stack, wired to each other, stopped by one
SIGTERM."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.processes import REPO, ServiceProcess, free_port


def test_the_stack_starts_wired_together_and_stops_on_one_sigterm(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("BREAKER_PORT", "CAMPAIGN_PORT", "JOB_PORT")}
    env = {**os.environ, **ports,
           "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}",
           "CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}"}
    log = (tmp_path / "stack.log").open("w")
    stack = subprocess.Popen([sys.executable, "-m", "services.stack"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for module, port_env in (("breaker_svc", "BREAKER_PORT"), ("job_svc", "JOB_PORT"), ("campaign_svc", "CAMPAIGN_PORT")):
            ServiceProcess(module, int(ports[port_env]), {}, tmp_path).wait_serving(60)
        with grpc.insecure_channel(f"127.0.0.1:{ports['BREAKER_PORT']}") as b_channel, \
                grpc.insecure_channel(f"127.0.0.1:{ports['JOB_PORT']}") as j_channel:
            breakers, jobs = breaker_pb2_grpc.BreakerServiceStub(b_channel), job_pb2_grpc.JobServiceStub(j_channel)
            breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency="perplexity", reason="incident"))
            deadline = time.monotonic() + 20  # job_svc follows breaker_svc's stream
            while "perplexity" not in jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest()).blocked_dependencies:
                assert time.monotonic() < deadline, "job_svc never heard of the opening"
                time.sleep(0.1)
            job = jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=["perplexity"])).job
            assert job.status == job_pb2.JOB_STATUS_PAUSED
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(30) == 0
    finally:
        if stack.poll() is None:
            stack.kill()
        log.close()
    assert (tmp_path / "stack.log").read_text().count("server_stopped") == 3
