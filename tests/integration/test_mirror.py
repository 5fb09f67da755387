"""The breaker mirror on its own: what it stores and when it calls the service's reconciler,
on PostgreSQL and SQLite (a minimal schema: just the mirror's two tables)."""

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData

from services.db import create_engine
from services.mirror import BreakerMirror, define_mirror_tables
from services.watch import BreakerState, BreakerView, Snapshot, Transition

S = BreakerState


class Recorder:
    """Stands in for a service's reconciler: remembers each state change it is asked to apply."""

    def __init__(self) -> None:
        self.changes: list[tuple[str, S, S | None]] = []

    async def __call__(self, connection, new: BreakerView, old: BreakerView | None) -> None:
        self.changes.append((new.dependency, new.state, old.state if old else None))


@pytest.fixture
async def mirror(database_url: str) -> AsyncIterator[tuple[BreakerMirror, Recorder]]:
    engine = create_engine(database_url)
    metadata = MetaData()
    states, cursor = define_mirror_tables(metadata)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    recorder = Recorder()
    yield BreakerMirror(engine, states, cursor, recorder, "127.0.0.1:1"), recorder
    await engine.dispose()


def view(dependency: str, state: S, revision: int) -> BreakerView:
    return BreakerView(dependency, state, revision, 2)


def transition(revision: int, dependency: str, from_state: S, to_state: S) -> Transition:
    return Transition(revision, dependency, from_state, to_state, 2, "test")


async def test_a_transition_applied_twice_changes_nothing_the_second_time(mirror) -> None:
    m, recorder = mirror
    await m.apply_transition(transition(1, "openai", S.CLOSED, S.OPEN))
    await m.apply_transition(transition(1, "openai", S.CLOSED, S.OPEN))
    assert recorder.changes == [("openai", S.OPEN, None)]
    assert await m.applied_revision() == 1


async def test_a_snapshot_older_than_the_applied_revision_cannot_move_the_mirror_back(mirror) -> None:
    m, recorder = mirror
    await m.apply_snapshot(Snapshot(40, (view("openai", S.CLOSED, 3),), reset=False))
    await m.apply_transition(transition(41, "openai", S.CLOSED, S.OPEN))
    # A replica that subscribed before revision 41 applies its (older) snapshot late.
    await m.apply_snapshot(Snapshot(40, (view("openai", S.CLOSED, 3),), reset=False))

    async with m._engine.connect() as connection:
        assert (await m.known_states(connection))["openai"].state is S.OPEN
    assert await m.applied_revision() == 41
    assert recorder.changes == [("openai", S.CLOSED, None), ("openai", S.OPEN, S.CLOSED)]


async def test_a_reset_snapshot_replaces_everything_and_closes_what_it_does_not_list(mirror) -> None:
    m, recorder = mirror
    await m.apply_transition(transition(7, "openai", S.CLOSED, S.OPEN))
    await m.apply_transition(transition(8, "apollo", S.CLOSED, S.FORCED_OPEN))
    # The breaker store was wiped: revisions start again, lower than what was applied.
    await m.apply_snapshot(Snapshot(2, (view("openai", S.OPEN, 2),), reset=True))

    async with m._engine.connect() as connection:
        states = await m.known_states(connection)
    assert {d: v.state for d, v in states.items()} == {"openai": S.OPEN, "apollo": S.CLOSED}
    assert await m.applied_revision() == 2
    assert recorder.changes[-1] == ("apollo", S.CLOSED, S.FORCED_OPEN)
