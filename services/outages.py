"""One answer to "did this error come from storage that cannot be reached?", for every service.

Such errors are the environment's, not a bug: callers get UNAVAILABLE (retryable) and loops that
talk to storage keep retrying. They come in families, and a driver's error often wraps the one
that says what happened, so the whole chain of causes is looked at:

- the network: `ConnectionError`, `TimeoutError`, redis-py's connection and timeout errors;
- SQLAlchemy's `OperationalError` / `InterfaceError`, and any DBAPI error raised on a connection
  SQLAlchemy has just invalidated (its dialect recognised a disconnect);
- asyncpg: a connection ended by the server (`PostgresConnectionError`, e.g. "connection was
  closed in the middle of operation"), an administrator ending sessions or the server shutting
  down (`OperatorInterventionError`: `pg_terminate_backend`, a restart), and the client-side
  errors of a connection whose protocol broke with it (`InterfaceError`, `InternalClientError`:
  "cannot switch to state ...; another operation is in progress", seen when the server ended the
  connection while a statement was running). Such a connection is not reused: the engines'
  `pool_pre_ping` drops it, so the next call gets a fresh one.
"""

import asyncpg
import redis.exceptions
import sqlalchemy.exc

LOST_STORAGE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)

_MAX_CAUSES = 10


def is_storage_outage(error: BaseException) -> bool:
    """True when `error`, or anything that caused it, says storage could not be reached or the
    connection to it was lost."""
    for cause in _causes(error):
        if isinstance(cause, LOST_STORAGE):
            return True
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return True
    return False


def _causes(error: BaseException) -> list[BaseException]:
    """`error` and what it wraps (SQLAlchemy's `orig`) or was raised from, a bounded set."""
    seen: list[BaseException] = []
    pending = [error]
    while pending and len(seen) < _MAX_CAUSES:
        current = pending.pop()
        if current in seen:
            continue
        seen.append(current)
        pending += [c for c in (getattr(current, "orig", None), current.__cause__, current.__context__) if c is not None]
    return seen
