"""A redis-server of a test's own, on a free port, that the test may crash and restart (the shared
Redis at 6379 is never stopped)."""

import signal
import subprocess
from pathlib import Path

import redis.asyncio

from tests.support.polling import eventually
from tests.support.processes import free_port


class OwnRedis:
    """Saves to `directory` only when told (SAVE); with `durable`, every write also goes to an
    append-only file first, so a crash loses nothing."""

    def __init__(self, directory: Path, durable: bool = False) -> None:
        self.directory = directory
        self.durable = durable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    async def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "yes", "--appendfsync", "always"] if self.durable else ["--appendonly", "no"]
        command += ["--dir", str(self.directory), "--dbfilename", "dump.rdb"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        async def answers() -> bool:
            client = redis.asyncio.from_url(self.url)
            try:
                return bool(await client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False
            finally:
                await client.aclose()

        assert await eventually(answers, timeout_s=30)

    def crash(self) -> None:
        """kill -9: without `durable`, whatever was written after the last SAVE is lost."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.crash()
