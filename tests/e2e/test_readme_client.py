"""README's "Calling a provider through a breaker" example, run verbatim against `make run`'s
stack: healthy, every lead gets its copy; with the provider down, failures are blamed on it,
the breaker opens and calls are refused at once."""

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from tests.support.processes import REPO, launch_stack


def readme_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Calling a provider through a breaker", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_guard_example_runs_verbatim_against_the_stack(tmp_path: Path) -> None:
    launched = launch_stack(tmp_path)
    stack = launched.process
    try:
        example = {**os.environ, "BREAKER_TARGET": launched.target("BREAKER_PORT")}
        healthy = subprocess.run([sys.executable, "-c", readme_example()], cwd=REPO, env=example, capture_output=True, text=True, timeout=60)
        with grpc.insecure_channel(example["BREAKER_TARGET"]) as channel:  # an empty window again
            breaker_pb2_grpc.BreakerServiceStub(channel).ResetBreaker(breaker_pb2.ResetBreakerRequest(dependency="openai"))
        down = subprocess.run([sys.executable, "-c", readme_example()], cwd=REPO, env={**example, "OPENAI_DOWN": "1"},
                              capture_output=True, text=True, timeout=60)
    finally:
        stack.send_signal(signal.SIGTERM)
        stack.wait(30)
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout.splitlines() == [f"email copy for lead {n}" for n in range(30)]
    assert down.returncode == 0, down.stderr
    lines = down.stdout.splitlines()
    assert lines[0] == "lead 0: failed, the fault of openai"
    assert any(re.fullmatch(r"lead \d+: breaker of 'openai' is open; retry in \d+\.\ds", line) for line in lines), down.stdout
