"""The breaker service's use cases: validate the input, then mutate or read through the store.

Every state change goes through `store.mutate` with a pure function of the domain, so the
store's atomic commit is the only way state changes. Errors are services.errors exceptions; the
server interceptor maps them to status codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from breaker_svc import domain, metrics
from breaker_svc.domain import Breaker, BreakerConfig, BreakerState, Change, Permission
from breaker_svc.hub import TransitionHub, WatchItem
from breaker_svc.store import BatchFn, BreakerStore, Mutation, MutateFn, R
from services import pagination
from services.errors import Aborted, InvalidArgument, NotFound
from services.validation import shown, validate_call_duration, validate_text

log = structlog.get_logger()

MAX_REASON_LENGTH = 1000
MAX_BATCH = 10_000
MAX_WATCHED_DEPENDENCIES = 100
MAX_BATCH_ID_LENGTH = 64
_BATCH_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_BATCH_ID_LENGTH}}}")
MAX_EPOCH_LENGTH = 64  # what subscribers store it in (services.mirror)
CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(BreakerConfig))


@dataclass(frozen=True)
class Outcome:
    """One call's result as a caller reports it. `success` None means the result was left unset."""

    dependency: str
    success: bool | None
    duration_s: float | None


@dataclass(frozen=True)
class Recorded:
    """What recording a batch wrote: its mutations (results are (counted before, counted after)
    of a dependency's outcomes), the outcomes this call counted, and those an earlier delivery of
    the same batch id had counted already."""

    mutations: list[Mutation[tuple[int, int]]]
    recorded: int
    already_recorded: int


@dataclass(frozen=True)
class Seen:
    """A breaker and the store time it was read at (time-based figures depend on it)."""

    breaker: Breaker
    now: float


@dataclass(frozen=True)
class Page:
    breakers: list[Breaker]
    next_page_token: str
    now: float


def validate_result(outcome: Outcome) -> Outcome:
    """The outcome's result and duration (its dependency is checked apart, once per name)."""
    if outcome.success is None:
        raise InvalidArgument("result is required: CALL_RESULT_SUCCESS or CALL_RESULT_FAILURE")
    validate_call_duration(outcome.duration_s, "duration")
    return outcome


def validate_batch_id(batch_id: str) -> str:
    if not _BATCH_ID.fullmatch(batch_id):
        raise InvalidArgument(
            f"batch_id must be 1..{MAX_BATCH_ID_LENGTH} characters of letters, digits, '.', '_', ':' and '-', got {shown(batch_id)}"
        )
    return batch_id


def validate_reason(reason: str) -> str:
    return validate_text(reason, "reason", max_length=MAX_REASON_LENGTH)


class BreakerUseCases:
    def __init__(self, store: BreakerStore, hub: TransitionHub, default_config: BreakerConfig) -> None:
        self._store = store
        self._hub = hub
        self._default_config = default_config.validated()

    # --- outcomes and permissions ---------------------------------------------------------

    async def record_outcome(self, outcome: Outcome) -> Mutation[tuple[int, int]]:
        return (await self.record_outcomes([outcome])).mutations[-1]

    async def record_outcomes(self, outcomes: Iterable[Outcome], batch_id: str | None = None) -> Recorded:
        """Records each dependency's outcomes in their order. Breakers are independent, so the
        batch is grouped by dependency: one atomic write per dependency and per state change,
        however the outcomes of several dependencies are interleaved.

        With `batch_id`, each write also stores how many of the batch's outcomes for that
        dependency are counted (`store.mutate_batch`), so a batch delivered again (a retry after
        a lost response, perhaps to another replica) counts only what was not counted yet.

        Outcomes are validated before any is recorded, so a bad one records none of the batch.
        """
        batch = [validate_result(o) for o in outcomes]
        if len(batch) > MAX_BATCH:
            raise InvalidArgument(f"a batch may hold at most {MAX_BATCH} outcomes, got {len(batch)}")
        if batch_id is not None:
            validate_batch_id(batch_id)
        by_dependency: dict[str, list[Outcome]] = {}
        for outcome in batch:
            by_dependency.setdefault(outcome.dependency, []).append(outcome)
        for dependency in by_dependency:
            domain.validate_dependency_name(dependency)
        mutations: list[Mutation[tuple[int, int]]] = []
        for dependency, run in by_dependency.items():
            mutations += await self._record_run(dependency, run, batch_id)
        recorded = sum(after - before for before, after in (m.result for m in mutations))
        return Recorded(mutations, recorded, len(batch) - recorded)

    async def _record_run(self, dependency: str, run: list[Outcome], batch_id: str | None) -> list[Mutation[tuple[int, int]]]:
        """One dependency's outcomes, a write per state change; each write records from where
        the batch's progress stands (without a batch id, from where the previous write ended)."""
        mutations = []
        counted = 0
        while counted < len(run):
            fn = self._recording(run)
            if batch_id is None:
                mutation = await self._mutate(dependency, _from(fn, counted))
            else:
                mutation = await self._mutate_batch(dependency, batch_id, fn)
            mutations.append(mutation)
            before, counted = mutation.result
            for success in (True, False):
                count = sum(1 for o in run[before:counted] if o.success is success)
                if count:
                    metrics.observe_calls(dependency, mutation.breaker.state, success, count)
        return mutations

    def _recording(self, run: list[Outcome]) -> BatchFn:
        """Records the run's outcomes from the `counted`-th one up to (and including) the first
        one that changes state; returns how many of the run are counted after that."""

        def fn(b: Breaker | None, now: float, counted: int) -> tuple[Breaker, Change | None, int]:
            b = b or self._new(run[0].dependency, now)
            rest = [(bool(o.success), o.duration_s) for o in run[counted:]]
            b, change, recorded = domain.record_outcomes(b, rest, now)
            return b, change, counted + recorded

        return fn

    async def acquire(self, dependency: str) -> Permission:
        domain.validate_dependency_name(dependency)

        def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, Permission]:
            b, permission, change = domain.acquire(b or self._new(dependency, now), now)
            return b, change, permission

        return (await self._mutate(dependency, fn)).result

    async def advance(self, dependency: str) -> Mutation[None]:
        """The timer's step: OPEN -> HALF_OPEN when the wait has elapsed (a no-op otherwise)."""

        def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
            if b is None:
                raise NotFound(f"no breaker for dependency {dependency!r}")
            return *domain.advance(b, now), None

        return await self._mutate(dependency, fn)

    # --- reads ----------------------------------------------------------------------------

    async def get(self, dependency: str) -> Seen:
        domain.validate_dependency_name(dependency)
        breaker = await self._store.get(dependency)
        if breaker is None:
            raise NotFound(f"no breaker for dependency {dependency!r}: it has never been seen")
        return Seen(breaker, await self._store.now())

    async def list(self, page_size: int, page_token: str, state: BreakerState | None) -> Page:
        limit = pagination.page_size(page_size)
        filters = {"state": state.value if state is not None else ""}
        position = pagination.decode_page_token(page_token, filters)
        after = _token_position(position)
        breakers = await self._store.list(after, limit + 1, state)
        more = len(breakers) > limit
        breakers = breakers[:limit]
        token = pagination.encode_page_token({"after": breakers[-1].dependency}, filters) if more else ""
        return Page(breakers, token, await self._store.now())

    # --- admin ----------------------------------------------------------------------------

    async def configure(self, dependency: str, updates: dict[str, Any]) -> Mutation[None]:
        """Applies `updates` (BreakerConfig field -> value) on top of the breaker's configuration."""
        domain.validate_dependency_name(dependency)
        unknown = sorted(set(updates) - CONFIG_FIELDS)
        if unknown:
            raise InvalidArgument(f"unknown config field(s): {', '.join(unknown)}")
        if not updates:
            raise InvalidArgument("config sets no field to change (set non-zero values or name them in update_mask)")

        def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
            b = b or self._new(dependency, now)
            return *domain.configure(b, dataclasses.replace(b.config, **updates), now), None

        return await self._mutate(dependency, fn)

    async def force_open(self, dependency: str, reason: str) -> Mutation[None]:
        return await self._force(dependency, validate_reason(reason), domain.force_open)

    async def force_close(self, dependency: str, reason: str) -> Mutation[None]:
        return await self._force(dependency, validate_reason(reason), domain.force_close)

    async def _force(self, dependency: str, reason: str, force: Any) -> Mutation[None]:
        domain.validate_dependency_name(dependency)

        def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
            return *force(b or self._new(dependency, now), reason, now), None

        return await self._mutate(dependency, fn)

    async def reset(self, dependency: str) -> Mutation[None]:
        domain.validate_dependency_name(dependency)

        def fn(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, None]:
            if b is None:
                raise NotFound(f"no breaker for dependency {dependency!r}: it has never been seen")
            return *domain.reset(b, now), None

        return await self._mutate(dependency, fn)

    # --- the transition stream ------------------------------------------------------------

    def watch(self, from_revision: int | None, dependencies: Iterable[str], epoch: str | None = None) -> AsyncIterator[WatchItem]:
        """The transition stream. `epoch` is the one `from_revision` belongs to: when it is not the
        log's current epoch the stream starts with a reset snapshot. Without it (or without
        `from_revision`) the revision is taken to belong to the current log."""
        if from_revision is not None and from_revision < 0:
            raise InvalidArgument(f"from_revision must not be negative, got {from_revision}")
        if epoch is not None:
            validate_text(epoch, "epoch", max_length=MAX_EPOCH_LENGTH)
        names = frozenset(dependencies)
        if len(names) > MAX_WATCHED_DEPENDENCIES:
            raise InvalidArgument(f"dependencies may name at most {MAX_WATCHED_DEPENDENCIES}, got {len(names)}")
        for name in names:
            domain.validate_dependency_name(name)
        return self._hub.watch(from_revision, names or None, epoch if from_revision is not None else None)

    # --- helpers --------------------------------------------------------------------------

    def _new(self, dependency: str, now: float) -> Breaker:
        return domain.new_breaker(dependency, self._default_config, now)

    async def _mutate(self, dependency: str, fn: MutateFn[R]) -> Mutation[R]:
        return self._observed(dependency, await self._store.mutate(dependency, fn))

    async def _mutate_batch(self, dependency: str, batch_id: str, fn: BatchFn) -> Mutation[tuple[int, int]]:
        return self._observed(dependency, await self._store.mutate_batch(dependency, batch_id, fn))

    def _observed(self, dependency: str, mutation: Mutation[R]) -> Mutation[R]:
        """Counts and logs the transition a mutation committed, if any."""
        if mutation.event is not None:
            change = mutation.event.change
            metrics.observe_transition(dependency, change.from_state, change.to_state)
            log.info(
                "breaker_transition",
                dependency=dependency,
                revision=mutation.event.revision,
                from_state=change.from_state.value,
                to_state=change.to_state.value,
                reason=change.reason,
            )
        return mutation


def _from(fn: BatchFn, counted: int) -> MutateFn[tuple[int, int]]:
    """`fn` as a plain mutation that starts at `counted` (a batch without an id)."""

    def mutation(b: Breaker | None, now: float) -> tuple[Breaker, Change | None, tuple[int, int]]:
        breaker, change, after = fn(b, now, counted)
        return breaker, change, (counted, after)

    return mutation


def _token_position(position: dict[str, Any] | None) -> str | None:
    if position is None:
        return None
    after = position.get("after")
    if not isinstance(after, str):
        raise InvalidArgument("page_token is malformed")
    return after


async def run_breaker_timer(use_cases: BreakerUseCases, store: BreakerStore, interval_s: float) -> None:
    """Turns OPEN breakers HALF_OPEN when their wait elapses, and reopens HALF_OPEN breakers
    whose trial passed its deadline, with no traffic needed.

    Every replica runs one; the compare-and-swap makes them idempotent: one commits the change,
    the others find HALF_OPEN already and change nothing.
    """
    while True:
        try:
            for dependency in await store.due_for_timer():
                await _advance_one(use_cases, store, dependency)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - an outage must not end the timer
            log.warning("breaker_timer_failed", exc_info=True)
        await asyncio.sleep(interval_s)


async def _advance_one(use_cases: BreakerUseCases, store: BreakerStore, dependency: str) -> None:
    """One due breaker; its failure must not hold up the others (entries come oldest first)."""
    try:
        await use_cases.advance(dependency)
    except NotFound:
        await store.forget_timer(dependency)  # a schedule entry whose breaker is gone
    except (Aborted, InvalidArgument, ValueError):
        log.warning("breaker_timer_failed", dependency=dependency, exc_info=True)
