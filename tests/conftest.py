"""Fixtures shared by every service's tests: real PostgreSQL and Redis, and service processes.

PostgreSQL and Redis must be running (the machine starts them; `.ci/run` starts them when down).
Each test that needs PostgreSQL gets a fresh database; Redis tests get a unique key prefix.
"""

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support.databases import fresh_postgres_database, throwaway_redis_prefix
from tests.support.processes import ServiceProcess, free_port
from tests.support.redis_server import OwnRedis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test; dropped afterwards."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test that uses it runs twice: on a fresh PostgreSQL database and on a SQLite file."""
    return request.getfixturevalue("postgres_url" if request.param == "postgres" else "sqlite_url")


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
async def redis_prefix() -> AsyncIterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards."""
    async with throwaway_redis_prefix(REDIS_URL, "test") as prefix:
        yield prefix


@pytest.fixture
def service_process(tmp_path: Path) -> Iterator:
    """Starts `python -m <module>` processes; every one still running is stopped afterwards.

    Usage: `proc = service_process("breaker_svc", {"BREAKER_STORE": "memory"}, port_env="BREAKER_PORT")`.
    """
    started: list[ServiceProcess] = []

    def start(module: str, env: dict[str, str], port_env: str, port: int | None = None) -> ServiceProcess:
        port = port or free_port()
        process = ServiceProcess(module, port, {**env, port_env: str(port)}, tmp_path)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[OwnRedis]:
    """A redis-server of this test's own (saving into tmp_path), which it may crash and restart."""
    server = OwnRedis(tmp_path)
    await server.start()
    yield server
    server.stop()
