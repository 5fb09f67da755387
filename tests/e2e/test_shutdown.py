"""SIGTERM answers the unary calls that reached a service before it, with real processes.

grpc.aio takes a burst of calls up one at a time; grpc's shutdown cancelled those received but
not yet handed to a handler, so callers saw CANCELLED for calls sent a few milliseconds before
the signal. The host now drains arrivals before it stops the server.
"""

import asyncio
import signal

import grpc
import pytest
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

BURST = 300


def _breaker_calls(channel: grpc.aio.Channel) -> list:
    stub = breaker_pb2_grpc.BreakerServiceStub(channel)
    success = breaker_pb2.CALL_RESULT_SUCCESS
    return [stub.RecordOutcome(breaker_pb2.RecordOutcomeRequest(dependency=f"d{i % 5}", result=success)) for i in range(BURST)]


def _job_calls(channel: grpc.aio.Channel) -> list:
    stub = job_pb2_grpc.JobServiceStub(channel)
    return [stub.GetJob(job_pb2.GetJobRequest(id="00000000-0000-0000-0000-000000000000")) for _ in range(BURST)]


SERVICES = {
    "breaker_svc": ("BREAKER_PORT", {"BREAKER_STORE": "memory"}, _breaker_calls, "OK"),
    "job_svc": ("JOB_PORT", {"BREAKER_TARGET": "127.0.0.1:9"}, _job_calls, "NOT_FOUND"),
}


@pytest.mark.parametrize("module", list(SERVICES))
async def test_sigterm_answers_every_unary_call_sent_before_it(service_process, tmp_path, module: str) -> None:
    port_env, env, make_calls, answer = SERVICES[module]
    env = {**env, "SHUTDOWN_GRACE_S": "5", "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}"}
    service = service_process(module, env, port_env=port_env)
    async with grpc.aio.insecure_channel(service.address) as channel:
        await channel.channel_ready()
        calls = make_calls(channel)
        await asyncio.sleep(0.003)
        service.process.send_signal(signal.SIGTERM)
        codes = []
        for call in calls:
            try:
                await call
                codes.append("OK")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
    assert {code: codes.count(code) for code in set(codes)} == {answer: BURST}
    assert await asyncio.to_thread(service.process.wait, 10) == 0
