"""A subscriber's own copy of the breaker states, kept in the subscriber's database.

job_svc and campaign_svc are reconcilers: they store the breaker states they last saw and the
last position (epoch and revision) they applied, in the same transaction as the records they
change. `BreakerMirror` runs the subscription: every snapshot or transition becomes, per
dependency whose state really changed, one call of the service's `on_state_change(connection,
new, old)` inside one transaction that also stores the new state and the applied position. So a
repeated, missed or reordered event, a restart or a reconnect converges to the same stored
states; a transition at or below the stored revision of the same epoch changes nothing.

Revisions compare only within an epoch (one incarnation of breaker_svc's log). A snapshot of
another epoch than the stored one replaces what is known, as a reset does; a transition of
another epoch is not applied: the stream is of a log the database has moved away from (or the
other way round), so the mirror reconnects from the stored position and breaker_svc sorts it out
(a replay if that position is in the current log, else a reset snapshot).
"""

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from contextlib import aclosing
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

from services import subscriber_metrics
from services.observer import BreakerObserver
from services.subscriber_metrics import RevisionProgress
from services.watch import BreakerState, BreakerView, BreakerWatcher, Heartbeat, Position, Snapshot, Transition

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
        # The epoch of breaker_svc's log `applied_revision` counts in; NULL when applied before
        # epochs existed (then the next connect starts from a snapshot).
        Column("epoch", String(64), nullable=True),
    )
    return states, cursor


class StreamOutOfDate(Exception):
    """A transition of another epoch than the applied one: the stream must start again from the
    applied position."""


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
        auto_pause: bool = True,
    ) -> None:
        self._engine = engine
        self._states = states
        self._cursor = cursor
        self._on_state_change = on_state_change
        # On every (re)connect the stream resumes from what this database has applied (or, only
        # observing, from what was observed last).
        self.watcher = BreakerWatcher(breaker_target, self._resume_position)
        self._retry_s = retry_s
        self.progress = RevisionProgress()
        self.auto_pause = auto_pause
        self._observer: BreakerObserver | None = None
        subscriber_metrics.AUTO_PAUSE.set(1 if auto_pause else 0)

    # -- reading ---------------------------------------------------------------------------

    async def applied_position(self) -> Position:
        """The epoch and revision applied last; (None, None) before anything was."""
        async with self._engine.connect() as connection:
            row = (await connection.execute(self._position_query())).first()
        return Position(None, None) if row is None else Position(row.epoch, row.applied_revision)

    async def _resume_position(self) -> Position:
        if self.auto_pause:
            return await self.applied_position()
        if self._observer is None:
            async with self._engine.connect() as connection:
                known = await self.known_states(connection)
            self._observer = BreakerObserver(known, await self.applied_position())
        return self._observer.position

    async def applied_revision(self) -> int | None:
        """The revision part of `applied_position` (for status reports and tests)."""
        return (await self.applied_position()).revision

    def _position_query(self):  # type: ignore[no-untyped-def]
        return select(self._cursor.c.epoch, self._cursor.c.applied_revision).where(self._cursor.c.id == 1)

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
            # A snapshot of another log than the applied one replaces what is known: revisions
            # of two logs say nothing about each other.
            reset = snapshot.reset or (applied.revision is not None and applied.epoch != snapshot.epoch)
            if (
                snapshot.reset
                and snapshot.epoch is not None
                and snapshot.epoch == applied.epoch
                and applied.revision is not None
                and snapshot.revision < applied.revision
            ):
                # A reset of the applied epoch, older than what is applied: a late duplicate (a
                # slower replica's reset, after another replica already applied it and more).
                # breaker_svc never takes a log back within an epoch (a log that went back gets
                # a new one), so it cannot be news. Without an epoch (an old breaker_svc) a
                # reset is always applied.
                return
            if not reset and applied.revision is not None and snapshot.revision <= applied.revision:
                return  # an older picture than what another replica has applied meanwhile
            known = await self._states_where(connection, None, lock="update")
            incoming = {view.dependency: view for view in snapshot.breakers}
            if reset:
                # What was known belongs to a log that is gone: a dependency the snapshot does
                # not list has no breaker any more, so it is closed.
                for dependency in known.keys() - incoming.keys():
                    incoming[dependency] = closed(dependency)
            for _, view in sorted(incoming.items()):
                old = known.get(view.dependency)
                if reset or old is None or old.revision <= view.revision:
                    await self._change(connection, view, old, force=reset)
            await self._store_position(connection, Position(snapshot.epoch, snapshot.revision))

    async def apply_transition(self, transition: Transition) -> None:
        async with self._engine.begin() as connection:
            applied = await self._lock_cursor(connection)
            epoch = applied.epoch if transition.epoch is None else transition.epoch  # None: a server without epochs
            if applied.revision is not None and epoch != applied.epoch:
                raise StreamOutOfDate(
                    f"transition {transition.revision} is of epoch {transition.epoch}, "
                    f"the applied position is {applied.revision} of epoch {applied.epoch}"
                )
            if applied.revision is not None and transition.revision <= applied.revision:
                return  # delivered again after a reconnect, or applied by another replica
            known = await self._states_where(connection, [transition.dependency], lock="update")
            await self._change(connection, transition.view, known.get(transition.dependency))
            await self._store_position(connection, Position(epoch, transition.revision))

    async def _lock_cursor(self, connection: AsyncConnection) -> Position:
        """The applied position, its row locked: replicas of one service apply events one at a
        time, and each sees what the previous one applied. Taken before any breaker row, so the
        lock order is always cursor, then breaker rows by name."""
        query = self._position_query()
        if connection.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await connection.execute(query)).first()
        return Position(None, None) if row is None else Position(row.epoch, row.applied_revision)

    async def _change(self, connection: AsyncConnection, view: BreakerView, old: BreakerView | None, force: bool = False) -> None:
        # A reset compares nothing by revision: the old revision may be of another log.
        if not force and old is not None and old.state == view.state and old.revision >= view.revision:
            return
        if old is not None and old.state == view.state and old.half_open_permitted_calls == view.half_open_permitted_calls:
            await self._upsert(connection, view)  # same state, newer revision: nothing to reconcile
            return
        # Store first: on a row not locked yet (a dependency first seen) the upsert takes the
        # lock, waiting for every start that share-locked this state (`locked_states`), so
        # reconciling afterwards sees what those starts wrote.
        await self._upsert(connection, view)
        await self._on_state_change(connection, view, old)
        subscriber_metrics.STATE_CHANGES.labels(view.dependency, view.state.value).inc()

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

    async def _store_position(self, connection: AsyncConnection, position: Position) -> None:
        values = {"id": 1, "applied_revision": position.revision, "epoch": position.epoch, "updated_at": datetime.now(UTC)}
        insert = self._insert(self._cursor).values(values)
        await connection.execute(insert.on_conflict_do_update(index_elements=["id"], set_=values))

    def _insert(self, table: Table | None = None):  # type: ignore[no-untyped-def]
        dialect_insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        return dialect_insert(self._states if table is None else table)

    # -- running ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Follows the breaker stream for ever. A failure to apply (database down) is logged and
        retried: the watcher reconnects from the position the database holds."""
        while True:
            try:
                async with aclosing(self.watcher.events()) as events:
                    async for event in events:
                        snapshot = isinstance(event, Snapshot)
                        self.progress.heard(event.revision, snapshot)
                        if isinstance(event, Heartbeat):
                            continue
                        if self._observer is not None:
                            self._observer.observe(event)
                        elif snapshot:
                            await self.apply_snapshot(event)
                        else:
                            await self.apply_transition(event)
                        self.progress.applied_up_to(event.revision, snapshot)
            except asyncio.CancelledError:
                raise
            except StreamOutOfDate as error:
                log.warning("breaker_stream_out_of_date", detail=str(error))
                await asyncio.sleep(self._retry_s * random.uniform(0.1, 0.5))
            except Exception:  # noqa: BLE001 - keep following; the next attempt resumes from the DB
                log.exception("breaker_mirror_apply_failed")
                await asyncio.sleep(self._retry_s)

    def last_contact_epoch(self) -> float | None:
        return self.watcher.last_contact_wall

    def is_stale(self, bound_s: float) -> bool:
        return self.watcher.is_stale(bound_s)
