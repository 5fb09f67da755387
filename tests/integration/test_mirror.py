"""The breaker mirror on its own: what it stores and when it calls the service's reconciler,
on PostgreSQL and SQLite (a minimal schema: just the mirror's two tables)."""

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import MetaData

from breaker_svc.store.memory import MemoryStore
from services.db import create_engine
from services.mirror import BreakerMirror, StreamOutOfDate, define_mirror_tables
from services.watch import BreakerState, BreakerView, Position, Snapshot, Transition
from tests.support.breaker import running_app
from tests.support.polling import eventually

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


def transition(revision: int, dependency: str, from_state: S, to_state: S, epoch: str | None = None) -> Transition:
    return Transition(revision, dependency, from_state, to_state, 2, "test", epoch)


async def states_of(m: BreakerMirror) -> dict[str, S]:
    async with m._engine.connect() as connection:
        return {d: v.state for d, v in (await m.known_states(connection)).items()}


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


# --- epochs: revisions count within one incarnation of breaker_svc's log --------------------


async def test_the_epoch_is_stored_with_the_revision_and_returned_with_it(mirror) -> None:
    m, _ = mirror
    assert await m.applied_position() == Position(None, None)
    await m.apply_snapshot(Snapshot(3, (view("openai", S.OPEN, 3),), reset=False, epoch="e1"))
    assert await m.applied_position() == ("e1", 3)
    await m.apply_transition(transition(4, "openai", S.OPEN, S.HALF_OPEN, epoch="e1"))
    assert await m.applied_position() == ("e1", 4)
    await m.apply_transition(transition(5, "openai", S.HALF_OPEN, S.CLOSED))  # a server without epochs
    assert await m.applied_position() == ("e1", 5)
    assert await m.applied_revision() == 5


async def test_a_reset_snapshot_stores_its_epoch(mirror) -> None:
    m, _ = mirror
    await m.apply_transition(transition(9, "openai", S.CLOSED, S.OPEN, epoch="e1"))
    await m.apply_snapshot(Snapshot(2, (view("apollo", S.FORCED_OPEN, 1),), reset=True, epoch="e2"))
    assert await m.applied_position() == ("e2", 2)
    assert await states_of(m) == {"openai": S.CLOSED, "apollo": S.FORCED_OPEN}


async def test_a_snapshot_of_another_epoch_replaces_everything_even_at_a_lower_revision(mirror) -> None:
    m, recorder = mirror
    await m.apply_snapshot(Snapshot(40, (view("openai", S.OPEN, 40),), reset=False, epoch="e1"))
    await m.apply_transition(transition(41, "apollo", S.CLOSED, S.FORCED_OPEN, epoch="e1"))
    # breaker_svc lost its log: a new one, at revision 3, with states the old revisions say nothing of.
    new_log = (view("apollo", S.FORCED_OPEN, 2), view("perplexity", S.FORCED_OPEN, 3), view("openai", S.OPEN, 1))
    await m.apply_snapshot(Snapshot(3, new_log, reset=False, epoch="e2"))

    assert await m.applied_position() == ("e2", 3)
    assert await states_of(m) == {"openai": S.OPEN, "apollo": S.FORCED_OPEN, "perplexity": S.FORCED_OPEN}
    async with m._engine.connect() as connection:
        revisions = {d: v.revision for d, v in (await m.known_states(connection)).items()}
    assert revisions == {"openai": 1, "apollo": 2, "perplexity": 3}  # the new log's, not the old one's
    assert recorder.changes[-1] == ("perplexity", S.FORCED_OPEN, None)


async def test_a_transition_of_another_epoch_is_refused_and_changes_nothing(mirror) -> None:
    m, recorder = mirror
    await m.apply_snapshot(Snapshot(5, (view("openai", S.CLOSED, 5),), reset=False, epoch="e1"))
    before = list(recorder.changes)

    with pytest.raises(StreamOutOfDate):
        await m.apply_transition(transition(6, "openai", S.CLOSED, S.FORCED_OPEN, epoch="e2"))

    assert await m.applied_position() == ("e1", 5)
    assert await states_of(m) == {"openai": S.CLOSED}
    assert recorder.changes == before


async def test_a_position_without_an_epoch_is_replaced_by_the_first_snapshot_with_one(mirror) -> None:
    m, _ = mirror
    # Applied before epochs existed (the migration leaves the column NULL).
    await m.apply_snapshot(Snapshot(50, (view("openai", S.OPEN, 50),), reset=False))
    assert await m.applied_position() == (None, 50)
    await m.apply_snapshot(Snapshot(4, (view("apollo", S.FORCED_OPEN, 4),), reset=False, epoch="e1"))
    assert await m.applied_position() == ("e1", 4)
    assert await states_of(m) == {"openai": S.CLOSED, "apollo": S.FORCED_OPEN}


@pytest.mark.parametrize("stored_epoch", ["an-epoch-that-is-gone", None], ids=["lost-epoch", "no-epoch"])
async def test_a_mirror_resuming_from_a_lost_log_is_reset_not_replayed(mirror, stored_epoch: str | None) -> None:
    m, recorder = mirror
    await m.apply_snapshot(Snapshot(2, (view("openai", S.CLOSED, 2),), reset=False, epoch=stored_epoch))
    async with running_app(MemoryStore(), heartbeat_s=0.1) as (app, _):
        # The new log passes the applied revision 2, with a ForceOpen before it.
        await app.use_cases.force_open("apollo", "incident")
        await app.use_cases.force_open("openai", "churn")
        await app.use_cases.force_close("openai", "churn")
        epoch = await app.store.epoch()
        following = BreakerMirror(m._engine, m._states, m._cursor, recorder, f"127.0.0.1:{app.port}")
        task = asyncio.create_task(following.run())
        try:

            async def caught_up() -> bool:
                return await following.applied_position() == (epoch, 3)

            await eventually(caught_up)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert await states_of(m) == {"openai": S.FORCED_CLOSED, "apollo": S.FORCED_OPEN}


async def test_a_late_reset_of_the_applied_epoch_below_the_applied_revision_is_a_duplicate(mirror) -> None:
    m, recorder = mirror
    await m.apply_snapshot(Snapshot(4, (view("openai", S.CLOSED, 4),), reset=True, epoch="e2"))
    await m.apply_transition(transition(5, "apollo", S.CLOSED, S.FORCED_OPEN, epoch="e2"))
    before = list(recorder.changes)
    # Another replica's stream got the same reset later, after revision 5 was applied.
    await m.apply_snapshot(Snapshot(4, (view("openai", S.CLOSED, 4),), reset=True, epoch="e2"))

    assert await m.applied_position() == ("e2", 5)
    assert await states_of(m) == {"openai": S.CLOSED, "apollo": S.FORCED_OPEN}
    assert recorder.changes == before
    # A reset of a new epoch is applied, whatever its revision.
    await m.apply_snapshot(Snapshot(2, (view("openai", S.OPEN, 2),), reset=True, epoch="e3"))
    assert await m.applied_position() == ("e3", 2)
    assert await states_of(m) == {"openai": S.OPEN, "apollo": S.CLOSED}
