"""Prometheus metrics as an operator scrapes them from a running breaker_svc."""

import urllib.request

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from tests.support.processes import free_port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def test_breaker_state_transitions_calls_and_rpcs_are_exported(service_process) -> None:
    metrics_port = free_port()
    env = {"BREAKER_STORE": "memory", "BREAKER_METRICS_PORT": str(metrics_port),
           "BREAKER_DEFAULT_MINIMUM_CALLS": "2", "BREAKER_DEFAULT_WINDOW_SIZE": "10"}
    process = service_process("breaker_svc", env, port_env="BREAKER_PORT")
    with grpc.insecure_channel(process.address) as channel:
        stub = breaker_pb2_grpc.BreakerServiceStub(channel)
        for _ in range(2):
            stub.RecordOutcome(breaker_pb2.RecordOutcomeRequest(dependency="openai", result=breaker_pb2.CALL_RESULT_FAILURE))

    text = scrape(metrics_port)
    assert 'breaker_state{dependency="openai",state="open"} 1.0' in text
    assert 'breaker_state{dependency="openai",state="closed"} 0.0' in text
    assert 'breaker_transitions_total{dependency="openai",from_state="closed",to_state="open"} 1.0' in text
    assert 'breaker_calls_total{dependency="openai",result="failure"} 2.0' in text
    assert 'grpc_server_handled_total{grpc_code="OK",grpc_method="/breaker.v1.BreakerService/RecordOutcome"} 2.0' in text
