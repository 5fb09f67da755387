"""SQLAlchemy async engines and Alembic migrations, shared by job_svc and campaign_svc.

PostgreSQL (asyncpg) in production, a SQLite file (aiosqlite) as the embedded default. On
SQLite every transaction starts with BEGIN IMMEDIATE: writers serialise up front, the closest
SQLite has to the row locks the PostgreSQL path takes with SELECT ... FOR UPDATE.
"""

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.config import ConfigError


def async_url(url: str) -> str:
    """Accepts plain `postgresql://` and `sqlite:///` URLs and picks the async driver."""
    parsed = make_url(url)
    drivers = {"postgresql": "postgresql+asyncpg", "postgres": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}
    backend = parsed.get_backend_name()
    if backend not in ("postgresql", "postgres", "sqlite"):
        raise ConfigError(f"database URL must be postgresql:// or sqlite:///, got {parsed.drivername!r}")
    if parsed.drivername in drivers:
        parsed = parsed.set(drivername=drivers[parsed.drivername])
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    if make_url(url).get_backend_name() == "sqlite":
        _ensure_sqlite_folder(url)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)
    engine.dialect.do_ping = _ping_without_round_trip  # type: ignore[method-assign]
    return engine


def _ping_without_round_trip(dbapi_connection) -> bool:  # type: ignore[no-untyped-def]
    """The pool's pre-ping on a checked-out asyncpg connection: is it still open? A server that
    ends a connection (restart, failover, pg_terminate_backend) closes its socket, and the event
    loop has read that end before the connection is next checked out; False then makes the pool
    replace every connection it holds. No statement: SQLAlchemy's own ping is BEGIN; SELECT;
    ROLLBACK, and even one empty statement was a round trip before every call of the hot paths
    (a quarter of a claim-and-finish cycle's round trips). A peer gone silent (no FIN) is caught
    by neither, only by the statement's own failure."""
    return not dbapi_connection._connection.is_closed()


def _ensure_sqlite_folder(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # pysqlite's own transaction handling defers BEGIN and cannot do BEGIN IMMEDIATE: take
    # control of it (the documented SQLAlchemy recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(connection):  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str, migrations_dir: Path) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return config


async def upgrade_schema(url: str, migrations_dir: Path) -> None:
    """Applies every pending migration. Alembic's env runs its own event loop, so it runs in a
    worker thread rather than inside the service's loop."""
    await asyncio.to_thread(command.upgrade, alembic_config(url, migrations_dir), "head")


def run_migrations(target_metadata) -> None:  # type: ignore[no-untyped-def]
    """The body of every service's alembic env.py: migrate online over the async engine."""
    from alembic import context

    async def migrate() -> None:
        engine = create_engine(context.config.get_main_option("sqlalchemy.url"))
        async with engine.connect() as connection:
            await connection.run_sync(_migrate_sync, context, target_metadata)
            await connection.commit()
        await engine.dispose()

    asyncio.run(migrate())


# Replicas starting together on one PostgreSQL database take turns to migrate: the first
# applies the pending migrations, the others then find nothing left to do.
MIGRATION_LOCK_KEY = 0x6D696772  # "migr"


def _migrate_sync(connection, context, target_metadata) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Held until this transaction ends, i.e. until the migrations are committed.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        context.run_migrations()
