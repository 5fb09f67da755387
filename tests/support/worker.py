"""Worker processes for end-to-end tests: `python -m services.client.worker MODULE:OBJECT` run
from a directory holding the test's handler module, pointed at the test's services."""

import os
import signal
import subprocess
import sys
from pathlib import Path

WORKER_COMMAND = [sys.executable, "-m", "services.client.worker"]


class WorkerProcess:
    def __init__(self, target: str, directory: Path, env: dict[str, str], name: str = "worker") -> None:
        self.log_path = directory / f"{name}.log"
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*WORKER_COMMAND, target, "--worker-id", name], cwd=directory, env={**os.environ, **env},
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 30.0) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
