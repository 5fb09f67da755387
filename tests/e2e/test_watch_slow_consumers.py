"""Slow, stopped and prompt WatchTransitions subscribers, each a process, during a burst of
transitions from a real breaker_svc process with a tiny ring (BREAKER_WATCH_BUFFER=4), so that a
prompt subscriber that misses the CPU for a moment is as far behind as the ring is long."""

import asyncio
import json
import signal
import subprocess
import sys

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from tests.support.processes import REPO

DEPENDENCIES = [f"burst-{i}" for i in range(8)]
FLIPS = 300  # per dependency: 2,400 transitions in all, revisions 1..2400
LAST = FLIPS * len(DEPENDENCIES)
BREAKER_ENV = {"BREAKER_STORE": "memory", "BREAKER_WATCH_BUFFER": "4", "BREAKER_HEARTBEAT_S": "0.2"}


def subscriber(address: str, delay_s: float = 0.0, stall_after: int = 0) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "tests.support.watch_subscriber", address, str(LAST), str(delay_s), str(stall_after)]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)


async def flip(stub: breaker_pb2_grpc.BreakerServiceStub, dependency: str) -> None:
    for i in range(FLIPS):
        if i % 2 == 0:
            await stub.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=dependency, reason="burst"))
        else:
            await stub.ForceClose(breaker_pb2.ForceCloseRequest(dependency=dependency, reason="burst"))


async def test_a_stopped_subscriber_is_ended_and_resumes_without_a_gap_while_prompt_ones_are_never_ended(service_process) -> None:
    breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
    roles = {"prompt-1": (0.0, 0), "prompt-2": (0.0, 0), "prompt-3": (0.0, 0), "slow": (0.0005, 0), "stopped": (0.0, 10)}
    processes = {role: subscriber(breaker.address, *args) for role, args in roles.items()}
    try:
        for process in processes.values():
            assert await asyncio.to_thread(process.stdout.readline) == "subscribed\n"
        async with grpc.aio.insecure_channel(breaker.address) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            await asyncio.gather(*(flip(stub, dependency) for dependency in DEPENDENCIES))
        processes["stopped"].send_signal(signal.SIGUSR1)  # it reads again: the rest, then its end
        results = {role: json.loads(await asyncio.to_thread(p.stdout.readline)) for role, p in processes.items()}
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.wait(10)

    for role, result in results.items():
        assert result["revisions"] == list(range(1, LAST + 1)), role  # every revision, once, in order
        assert result["snapshots"] == 1, role  # resumed by replay, never by a reset snapshot
    assert [results[f"prompt-{i}"]["ended"] for i in (1, 2, 3)] == [0, 0, 0]
    assert results["stopped"]["ended"] >= 1
