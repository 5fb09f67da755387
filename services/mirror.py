"""A subscriber's own copy of the breaker states, kept in the subscriber's database.

job_svc and campaign_svc are reconcilers: they store the breaker states they last saw and the
last revision they applied, in the same transaction as the records they change. `BreakerMirror`
runs the subscription: every snapshot or transition becomes, per dependency whose state really
changed, one call of the service's `on_state_change(connection, new, old)` inside one
transaction that also stores the new state and the applied revision. So a repeated, missed or
reordered event, a restart or a reconnect converges to the same stored states; a transition at
or below the stored revision changes nothing.
"""

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime

import structlog
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.watch import BreakerState, BreakerView, BreakerWatcher, Heartbeat, Snapshot, Transition

log = structlog.get_logger()

StateChangeHandler = Callable[[AsyncConnection, BreakerView, BreakerView | None], Awaitable[None]]


def breaker_state_enum() -> Enum:
    """The database enum of breaker states: exactly the lowercase values of `BreakerState`."""
    return Enum(
        BreakerState,
        name="breaker_state",
        values_callable=lambda states: [s.value for s in states],
        validate_strings=True,
    )


def define_mirror_tables(metadata: MetaData) -> tuple[Table, Table]:
    states = Table(
        "breaker_states",
        metadata,
        Column("dependency", String(63), primary_key=True),
        Column("state", breaker_state_enum(), nullable=False),
        Column("revision", BigInteger, nullable=False),
        Column("half_open_permitted_calls", Integer, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    cursor = Table(
        "breaker_watch_cursor",
        metadata,
        Column("id", Integer, primary_key=True),  # a single row, id 1
        Column("applied_revision", BigInteger, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
    return states, cursor


def closed(dependency: str) -> BreakerView:
    """What a subscriber assumes of a dependency it has never heard of."""
    return BreakerView(dependency, BreakerState.CLOSED, 0, 0)


class BreakerMirror:
    def __init__(
        self,
        engine: AsyncEngine,
        states: Table,
        cursor: Table,
        on_state_change: StateChangeHandler,
        breaker_target: str,
        retry_s: float = 1.0,
    ) -> None:
        self._engine = engine
        self._states = states
        self._cursor = cursor
        self._on_state_change = on_state_change
        # On every (re)connect the stream resumes from what this database has applied.
        self.watcher = BreakerWatcher(breaker_target, self.applied_revision)
        self._retry_s = retry_s

    # -- reading ---------------------------------------------------------------------------

    async def applied_revision(self) -> int | None:
        async with self._engine.connect() as connection:
            return await self._applied_revision(connection)

    async def _applied_revision(self, connection: AsyncConnection) -> int | None:
        return await connection.scalar(select(self._cursor.c.applied_revision).where(self._cursor.c.id == 1))

    async def known_states(self, connection: AsyncConnection, dependencies: Iterable[str] | None = None) -> dict[str, BreakerView]:
        """The stored states (of `dependencies`, or all), without locking."""
        return await self._states_where(connection, dependencies, lock=None)

    async def _states_where(
        self, connection: AsyncConnection, dependencies: Iterable[str] | None, lock: str | None
    ) -> dict[str, BreakerView]:
        query = select(self._states)
        if dependencies is not None:
            query = query.where(self._states.c.dependency.in_(sorted(dependencies)))
        if lock and connection.dialect.name == "postgresql":
            # Rows are always locked in dependency order, so two lockers never deadlock.
            query = query.order_by(self._states.c.dependency).with_for_update(read=lock == "share")
        rows = (await connection.execute(query)).mappings()
        return {r["dependency"]: BreakerView(r["dependency"], r["state"], r["revision"], r["half_open_permitted_calls"]) for r in rows}

    async def ensure_rows(self, connection: AsyncConnection, dependencies: tuple[str, ...]) -> None:
        """Creates a CLOSED row for each dependency not seen yet, so that row locks on it exist
        for the start-versus-opening race to serialise on."""
        if not dependencies:
            return
        now = datetime.now(UTC)
        rows = [
            {"dependency": d, "state": BreakerState.CLOSED, "revision": 0, "half_open_permitted_calls": 0, "updated_at": now}
            for d in dependencies
        ]
        await connection.execute(self._insert().values(rows).on_conflict_do_nothing(index_elements=["dependency"]))

    async def locked_states(self, connection: AsyncConnection, dependencies: tuple[str, ...] | None) -> dict[str, BreakerView]:
        """The states of `dependencies` (or all), share-locked for the rest of the transaction:
        the mirror cannot change them until it commits (PostgreSQL; SQLite transactions are
        serialised already)."""
        if dependencies is not None:
            await self.ensure_rows(connection, dependencies)
        return await self._states_where(connection, dependencies, lock="share")

    # -- applying --------------------------------------------------------------------------

    async def apply_snapshot(self, snapshot: Snapshot) -> None:
        async with self._engine.begin() as connection:
            applied = await self._lock_cursor(connection)
            if not snapshot.reset and applied is not None and snapshot.revision <= applied:
                return  # an older picture than what another replica has applied meanwhile
            known = await self._states_where(connection, None, lock="update")
            incoming = {view.dependency: view for view in snapshot.breakers}
            if snapshot.reset:
                # What was known belongs to a log that is gone: a dependency the snapshot does
                # not list has no breaker any more, so it is closed.
                for dependency in known.keys() - incoming.keys():
                    incoming[dependency] = closed(dependency)
            for _, view in sorted(incoming.items()):
                old = known.get(view.dependency)
                if snapshot.reset or old is None or old.revision <= view.revision:
                    await self._change(connection, view, old)
            await self._store_revision(connection, snapshot.revision)

    async def apply_transition(self, transition: Transition) -> None:
        async with self._engine.begin() as connection:
            applied = await self._lock_cursor(connection)
            if applied is not None and transition.revision <= applied:
                return  # delivered again after a reconnect, or applied by another replica
            known = await self._states_where(connection, [transition.dependency], lock="update")
            await self._change(connection, transition.view, known.get(transition.dependency))
            await self._store_revision(connection, transition.revision)

    async def _lock_cursor(self, connection: AsyncConnection) -> int | None:
        """The applied revision, its row locked: replicas of one service apply events one at a
        time, and each sees what the previous one applied. Taken before any breaker row, so the
        lock order is always cursor, then breaker rows by name."""
        query = select(self._cursor.c.applied_revision).where(self._cursor.c.id == 1)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        return await connection.scalar(query)

    async def _change(self, connection: AsyncConnection, view: BreakerView, old: BreakerView | None) -> None:
        if old is not None and old.state == view.state and old.revision >= view.revision:
            return
        if old is not None and old.state == view.state and old.half_open_permitted_calls == view.half_open_permitted_calls:
            await self._upsert(connection, view)  # same state, newer revision: nothing to reconcile
            return
        # Store first: on a row not locked yet (a dependency first seen) the upsert takes the
        # lock, waiting for every start that share-locked this state (`locked_states`), so
        # reconciling afterwards sees what those starts wrote.
        await self._upsert(connection, view)
        await self._on_state_change(connection, view, old)

    async def _upsert(self, connection: AsyncConnection, view: BreakerView) -> None:
        values = {
            "dependency": view.dependency,
            "state": view.state,
            "revision": view.revision,
            "half_open_permitted_calls": view.half_open_permitted_calls,
            "updated_at": datetime.now(UTC),
        }
        statement = self._insert().values(values)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["dependency"], set_={k: v for k, v in values.items() if k != "dependency"}
            )
        )

    async def _store_revision(self, connection: AsyncConnection, revision: int) -> None:
        values = {"id": 1, "applied_revision": revision, "updated_at": datetime.now(UTC)}
        insert = self._insert(self._cursor).values(values)
        await connection.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))

    def _insert(self, table: Table | None = None):  # type: ignore[no-untyped-def]
        dialect_insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        return dialect_insert(self._states if table is None else table)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Follows the breaker stream for ever. A failure to apply (database down) is logged and
        retried: the watcher reconnects from the revision the database holds."""
        while True:
            try:
                async for event in self.watcher.events():
                    if isinstance(event, Snapshot):
                        await self.apply_snapshot(event)
                    elif isinstance(event, Transition):
                        await self.apply_transition(event)
                    elif isinstance(event, Heartbeat):
                        continue
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep following; the next attempt resumes from the DB
                log.exception("breaker_mirror_apply_failed")
                await asyncio.sleep(self._retry_s)

    def contact_age_s(self) -> float | None:
        return self.watcher.seconds_since_contact()

    def last_contact_epoch(self) -> float | None:
        return self.watcher.last_contact_wall

    def is_stale(self, bound_s: float) -> bool:
        return self.watcher.is_stale(bound_s)
