"""services.client needs grpcio, protobuf and the generated code only: imported by an isolated
interpreter (`python -I -S`) whose path holds nothing else, it works against a real breaker_svc
and never imports a server-side package."""

import asyncio
import subprocess
import sys
from pathlib import Path

import google.protobuf
import grpc
import typing_extensions

from breaker_svc.store.memory import MemoryStore
from tests.support.breaker import running_app

REPO = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = ("sqlalchemy", "asyncpg", "redis", "structlog", "aiosqlite", "alembic", "prometheus_client")
SERVER_CODE = ("breaker_svc", "job_svc", "campaign_svc", "services.mirror", "services.watch", "services.db")

PROGRAM = """
import asyncio, sys
for name in {packages!r}:
    try:
        __import__(name)
    except ImportError:
        continue
    raise SystemExit(f"{{name}} is importable: the path is not isolated")

from services.client import BreakerClient, BreakerOpen, BreakerServiceClient, CampaignClient, SyncBreakerClient

async def main():
    async with BreakerClient({target!r}, tls=None) as breakers, BreakerServiceClient({target!r}, tls=None) as admin:
        async with breakers.guard("openai"):
            pass
        await admin.force_open("openai", "isolation test")
        while breakers.state("openai").value != "forced_open":
            await asyncio.sleep(0.01)
        try:
            async with breakers.guard("openai"):
                raise SystemExit("the guard let a call through an open breaker")
        except BreakerOpen:
            pass
    loaded = sorted(set(sys.modules) & set({packages!r} + {code!r}))
    print("loaded:", loaded)

asyncio.run(main())
"""


def isolated_path(tmp_path: Path) -> list[str]:
    """A folder holding only grpc (with typing_extensions, grpcio's own dependency) and
    google.protobuf (links), then the repository and gen/."""
    (tmp_path / "google").mkdir()
    (tmp_path / "grpc").symlink_to(Path(grpc.__file__).parent)
    (tmp_path / "typing_extensions.py").symlink_to(typing_extensions.__file__)
    (tmp_path / "google" / "protobuf").symlink_to(Path(google.protobuf.__file__).parent)
    return [str(tmp_path), str(REPO), str(REPO / "gen")]


async def test_the_client_runs_with_grpc_and_protobuf_alone(tmp_path: Path) -> None:
    async with running_app(MemoryStore()) as (app, _):
        program = PROGRAM.format(packages=SERVER_PACKAGES, code=SERVER_CODE, target=f"127.0.0.1:{app.port}")
        code = f"import sys; sys.path[:0] = {isolated_path(tmp_path)!r}\n" + program
        process = await _run([sys.executable, "-I", "-S", "-c", code])
    assert process.returncode == 0, process.stdout + process.stderr
    assert "loaded: []" in process.stdout


async def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, cwd="/")
