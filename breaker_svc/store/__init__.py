"""Where breakers and the ordered log of their transitions live, behind one interface.

A store commits a breaker, the next deployment-wide revision and the transition event together,
all or nothing. Callers never read-then-write: they hand `mutate` a pure function of the current
breaker and the store's clock, and the store applies it atomically, retrying it when a concurrent
writer won (compare-and-swap), so racing replicas never emit two events for one change.

The log has an epoch: an id of its incarnation, made when the log is created (the in-memory store
at construction; Redis when its key is missing, i.e. first use or after a flush, and whenever the
Redis process changed, since a restart from an older save takes the revisions back). Revisions
count within an epoch, and only forwards: a log that is lost, or went back, continues under a new
epoch, so a subscriber resuming with a revision of the old epoch is told to start over instead of
being handed the new log's events after a revision that meant something else. A regression seen
within one epoch (its revision below one seen in it) rotates the epoch too
(`rotate_epoch_if_behind`).
"""

from __future__ import annotations

from collections.abc import Callable
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from breaker_svc.domain import Breaker, BreakerState, Change

if TYPE_CHECKING:
    from breaker_svc.settings import BreakerSettings

R = TypeVar("R")

# fn(current breaker or None, now) -> (new breaker, the change it made or None, a result).
MutateFn = Callable[[Breaker | None, float], tuple[Breaker, Change | None, R]]

# fn(current breaker or None, now, how many of a batch's outcomes for this breaker are counted
#    already) -> (new breaker, the change it made or None, how many are counted after it).
BatchFn = Callable[[Breaker | None, float, int], tuple[Breaker, Change | None, int]]

# How long a batch id is remembered by default (BREAKER_BATCH_RETENTION_S).
BATCH_RETENTION_S = 600.0

# Compare-and-swap attempts before a mutation gives up with ABORTED.
MAX_CAS_ATTEMPTS = 64


@dataclass(frozen=True)
class Event:
    """One committed transition and its position in the deployment-wide log."""

    revision: int
    change: Change

    @property
    def dependency(self) -> str:
        return self.change.dependency


@dataclass(frozen=True)
class Mutation(Generic[R]):
    """What `mutate` committed: the breaker after it, the event (if the state changed), fn's result."""

    breaker: Breaker
    event: Event | None
    result: R
    now: float


@dataclass(frozen=True)
class Snapshot:
    """Breakers, the revision they reflect and the epoch of that revision, read at one instant."""

    revision: int
    breakers: tuple[Breaker, ...]
    now: float
    epoch: str


def new_epoch() -> str:
    """A fresh, unguessable incarnation id for a transition log (32 hex characters)."""
    return uuid.uuid4().hex


class BreakerStore(Protocol):
    async def mutate(self, dependency: str, fn: MutateFn[R]) -> Mutation[R]:
        """Applies fn to the breaker atomically; raises Aborted after MAX_CAS_ATTEMPTS lost races."""

    async def mutate_batch(self, dependency: str, batch_id: str, fn: BatchFn) -> Mutation[tuple[int, int]]:
        """Applies fn to the breaker atomically together with the batch's progress on it: fn is
        given how many of batch `batch_id`'s outcomes for `dependency` are counted already (by an
        earlier round of this delivery, an earlier delivery, or another replica's), and the count
        it returns is stored in the same commit. So each outcome of a batch is counted once
        however often the batch is delivered within the retention window, which starts at the
        batch's first commit. The result is (counted before, counted after)."""

    async def get(self, dependency: str) -> Breaker | None: ...

    async def list(self, after: str | None, limit: int, state: BreakerState | None) -> list[Breaker]:
        """Breakers by dependency name, those after `after` (keyset paging), at most `limit`."""

    async def snapshot(self, dependencies: frozenset[str] | None) -> Snapshot:
        """All breakers (or the named ones that exist), the current revision and epoch, atomically."""

    async def epoch(self) -> str:
        """The log's current epoch (created if the log has none yet)."""

    async def check_incarnation(self) -> bool:
        """Rotates the epoch if the log may have gone back since it was made (Redis restarted);
        True if it did. The memory store's log cannot: a no-op."""

    async def rotate_epoch_if_behind(self, epoch: str, revision: int) -> bool:
        """Rotates the epoch if it is `epoch` and the current revision is below `revision`, which
        was seen in it (the log went back); True if it did. Racing callers rotate once."""

    async def events_after(self, revision: int, limit: int, epoch: str | None = None) -> list[Event] | None:
        """Up to `limit` events after `revision`, in order; None when they are not all retained
        (trimmed, or `revision` is newer than the log: the log was lost), or when `epoch` is
        given and is not the log's current epoch (checked atomically with the read)."""

    async def tail(self, revision: int, timeout_s: float, limit: int, epoch: str | None = None) -> list[Event] | None:
        """Like `events_after`, but waits up to `timeout_s` for an event when there is none yet."""

    async def current_revision(self) -> int: ...

    async def due_for_timer(self) -> list[str]:
        """Dependencies whose `Breaker.timer_due_at` has passed: an OPEN wait elapsed, or a
        HALF_OPEN trial past its deadline (for the timer)."""

    async def forget_timer(self, dependency: str) -> None:
        """Drops a schedule entry whose breaker does not exist (the timer found it so)."""

    async def now(self) -> float:
        """The store's clock, in seconds since the epoch (Redis `TIME`, so replica clocks don't matter)."""

    async def close(self) -> None: ...


def create_store(settings: BreakerSettings) -> BreakerStore:
    """The store the settings name: `memory` (embedded default) or `redis`."""
    if settings.store == "redis":
        from breaker_svc.store.redis_store import RedisStore

        return RedisStore.from_url(
            settings.redis_url,
            prefix=settings.redis_prefix,
            retention=settings.event_retention,
            batch_retention_s=settings.batch_retention_s,
        )
    from breaker_svc.store.memory import MemoryStore

    return MemoryStore(retention=settings.event_retention, batch_retention_s=settings.batch_retention_s)

