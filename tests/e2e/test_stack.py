"""`make run`'s launcher: the three services as one stack, wired to each other, stopped by one
SIGTERM."""

import signal
import time
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.processes import launch_stack


def test_the_stack_starts_wired_together_and_stops_on_one_sigterm(tmp_path: Path) -> None:
    launched = launch_stack(tmp_path)
    stack = launched.process
    try:
        with grpc.insecure_channel(launched.target("BREAKER_PORT")) as b_channel, \
                grpc.insecure_channel(launched.target("JOB_PORT")) as j_channel:
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
    assert launched.output().count("server_stopped") == 3
