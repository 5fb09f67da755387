"""Throw-away storage for tests and benchmarks: fresh PostgreSQL databases and Redis key
prefixes, removed afterwards."""

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import redis.asyncio

POSTGRES_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database; dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def throwaway_redis_prefix(redis_url: str, label: str) -> AsyncIterator[str]:
    """A Redis key prefix nothing else uses; its keys are deleted afterwards."""
    prefix = f"{label}:{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.asyncio.from_url(redis_url)
        try:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


async def cut_connections(database_url: str) -> int:
    """Ends every server connection to the database of `database_url` (a throw-away one: this
    never touches another database), as a PostgreSQL restart or failover would; returns how many."""
    name = database_url.rsplit("/", 1)[1]
    assert name.startswith("test_"), f"refusing to cut connections to {name!r}: not a throw-away database"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        query = "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
        return await admin.fetchval(query, name)
    finally:
        await admin.close()
