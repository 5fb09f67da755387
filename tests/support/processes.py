"""Runs the services as real processes for end-to-end tests."""

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.client.channel import ClientTLS
from services.healthcheck import wait_serving

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """One `python -m <module>` process, its output kept in a log file for post-mortems."""

    def __init__(self, module: str, port: int, env: dict[str, str], log_dir: Path) -> None:
        self.module = module
        self.port = port
        self.address = f"127.0.0.1:{port}"
        self.log_path = log_dir / f"{module}-{port}.log"
        self._env = {**os.environ, **env}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> "ServiceProcess":
        self.launch()
        self.wait_serving(timeout_s)
        return self

    def launch(self) -> "ServiceProcess":
        """Starts the process without waiting for it to serve (to start several at once)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], cwd=REPO, env=self._env, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def wait_serving(self, timeout_s: float) -> None:
        # Dials as the process's own clients do: TLS when its environment says so.
        def running() -> bool:
            return self.process is None or self.process.poll() is None

        if wait_serving(self.address, timeout_s, running, ClientTLS.from_env(self._env)):
            return
        if not running():
            raise RuntimeError(f"{self.module} exited with {self.process.returncode}:\n{self.output()}")
        raise TimeoutError(f"{self.module} did not serve on {self.address} within {timeout_s}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout_s: float = 20.0) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                self.terminate()
            except subprocess.TimeoutExpired:
                self.kill()


STACK_PORTS = ("BREAKER_PORT", "CAMPAIGN_PORT", "JOB_PORT")
STACK_MODULES = {"BREAKER_PORT": "breaker_svc", "CAMPAIGN_PORT": "campaign_svc", "JOB_PORT": "job_svc"}


@dataclass
class StackProcess:
    """`make run`'s launcher (services.stack) running, its output in `log_path`."""

    process: subprocess.Popen[bytes]
    ports: dict[str, int]
    env: dict[str, str]
    log_path: Path

    def target(self, port_variable: str) -> str:
        return f"127.0.0.1:{self.ports[port_variable]}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def launch_stack(folder: Path, environ: dict[str, str] | None = None, **popen: Any) -> StackProcess:
    """`python -m services.stack` on free ports with SQLite files in `folder` (`environ` in place
    of this process's environment), returned once all three services serve. The caller stops it."""
    ports = {name: free_port() for name in STACK_PORTS}
    env = {**(os.environ if environ is None else environ), **{name: str(port) for name, port in ports.items()},
           "JOB_DATABASE_URL": f"sqlite:///{folder / 'job.db'}", "CAMPAIGN_DATABASE_URL": f"sqlite:///{folder / 'campaign.db'}"}
    log_path = folder / "stack.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services.stack"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, **popen
        )
    stack = StackProcess(process, ports, env, log_path)
    try:
        for name, port in ports.items():
            ServiceProcess(STACK_MODULES[name], port, {}, folder).wait_serving(60)
    except BaseException:
        process.kill()
        raise
    return stack

