"""The scenario's processes: the stack, the simulated providers and the workers, each a real
`python -m` process with its output in a log file, stopped together by SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


from services.client.channel import ClientTLS
from services.healthcheck import wait_serving

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    name: str
    args: list[str]
    env: dict[str, str]
    address: str | None = None  # a gRPC server to wait for, if the process is one
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self, log_dir: Path) -> None:
        log = (log_dir / f"{self.name}.log").open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, *self.args], cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT
        )

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


def check_port_free(process: Process) -> None:
    """Refuses to start a server on a port something else holds: its health check would answer
    for it, and the scenario would drive a stranger's stack."""
    host, _, port = process.address.rpartition(":")  # type: ignore[union-attr]
    with socket.socket() as probe:
        try:
            probe.bind((host, int(port)))
        except OSError:
            raise RuntimeError(f"port {port} for {process.name} is in use (a `make run` still running?); "
                               "choose other ports with BREAKER_PORT, JOB_PORT, CAMPAIGN_PORT, PROVIDERS_PORT") from None


class ProcessGroup:
    """Starts processes, waits until their servers serve, and stops them all with SIGTERM."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[Process] = []

    def start(self, *processes: Process, timeout_s: float = 60.0) -> None:
        for process in processes:
            if process.address:
                check_port_free(process)
        for process in processes:
            process.start(self.log_dir)
            self.processes.append(process)
        for process in processes:
            if process.address:
                self._wait_serving(process, timeout_s)

    def _wait_serving(self, process: Process, timeout_s: float) -> None:
        if wait_serving(process.address, timeout_s, process.running, ClientTLS.from_env()):  # type: ignore[arg-type]
            return
        if not process.running():
            raise RuntimeError(f"{process.name} exited; see {self.log_dir / (process.name + '.log')}")
        raise TimeoutError(f"{process.name} did not serve on {process.address} within {timeout_s:g}s")

    def stop(self, timeout_s: float = 30.0) -> dict[str, int]:
        """SIGTERM to all, newest first (workers before the services they call); exit codes."""
        for process in reversed(self.processes):
            if process.running():
                process.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        codes = {}
        for process in reversed(self.processes):
            assert process.popen is not None
            try:
                codes[process.name] = process.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                codes[process.name] = process.popen.wait()
        return codes
