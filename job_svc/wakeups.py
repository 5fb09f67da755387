"""Waking the claims that wait (ClaimJobs with `wait`) as soon as work becomes claimable.

Every transaction that makes a job claimable announces it (`JobTx.announce_claimable`): on
PostgreSQL with NOTIFY on `CHANNEL`, which PostgreSQL delivers at commit to every job_svc process
listening on that database; on SQLite, where one process owns the file, by signalling this
process directly. Each process keeps one LISTEN connection and fans a notification out to all
its waiting claims, which then claim again. A process wakes its own claims itself as soon as
its transaction has committed (JobStore), without waiting for the notification to come back
through the server, and its listener skips the notifications it sent that way (they name it).

Work that becomes claimable later (a scheduled start, the end of a retry's backoff) is announced
with its due time, and each process sets a timer for it. What may have been missed (announced
while the listener was reconnecting, or before this process started) is covered by waking every
claim on each (re)connect and asking the database for the next due time; a slow re-check by the
waiting claims themselves (`JOB_CLAIM_RECHECK_S`) is the last safety net, not the mechanism.
"""

import asyncio
import heapq
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from services.backoff import Backoff

log = structlog.get_logger()

CHANNEL = "job_svc_claimable"
# Future due times remembered per process; beyond this the re-check covers the rest.
MAX_TIMERS = 10_000


def encode_due(due: datetime | None, sender: str = "") -> str:
    """A notification's payload, `sender|due`: the process that has woken its own claims
    already (empty: none has) and the ISO due time (empty: claimable now)."""
    return f"{sender}|{'' if due is None else due.isoformat()}"


def decode_due(payload: str) -> tuple[str, datetime | None]:
    """The sender and due time of a payload; one without a sender (a job_svc before senders
    were named sends the due time alone) wakes everyone."""
    sender, _, due = payload.rpartition("|")
    try:
        return sender, datetime.fromisoformat(due) if due else None
    except ValueError:
        return sender, None  # not ours to judge: waking costs one claim


class ClaimSignal:
    """Fan-out of "something became claimable" to the claims waiting in this process."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._generation = 0
        self._waiters: set[asyncio.Future[None]] = set()
        self._due: list[float] = []  # loop times, a heap
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        # Names this process in the notifications whose claims it wakes itself (`encode_due`).
        self.process_id = uuid.uuid4().hex
        # Called when a timer fired: due times announced as one (a batch's earliest) may hide
        # later ones, which the listener then asks the database for.
        self.after_timer: Callable[[], None] = lambda: None

    @property
    def generation(self) -> int:
        """Read before a claim; `wait(generation)` then returns at once if anything was announced
        in between, so no announcement falls between a claim and its wait."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait(self, since_generation: int, timeout_s: float) -> None:
        """Until an announcement after `since_generation`, the timeout, or shutdown."""
        if self._closed or self._generation != since_generation or timeout_s <= 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                await waiter
        except TimeoutError:
            pass
        finally:
            self._waiters.discard(waiter)

    def wake(self) -> None:
        self._generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def wake_at(self, due: datetime | None) -> None:
        """Wakes the waiting claims now (`due` None or past) or when `due` arrives."""
        delay_s = 0.0 if due is None else (due - self._clock()).total_seconds()
        if delay_s <= 0:
            self.wake()
            return
        if len(self._due) >= MAX_TIMERS:
            return
        loop = asyncio.get_running_loop()
        heapq.heappush(self._due, loop.time() + delay_s)
        self._arm(loop)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._due or self._closed:
            return
        if self._timer is not None:
            if self._timer.when() <= self._due[0]:
                return
            self._timer.cancel()
        self._timer = loop.call_at(self._due[0], self._on_timer, loop)

    def _on_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        while self._due and self._due[0] <= loop.time():
            heapq.heappop(self._due)
        self.wake()
        self._arm(loop)
        self.after_timer()

    def close(self) -> None:
        """Shutdown: every waiting claim answers at once (empty), and later ones do not wait."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self.wake()


class ClaimListener:
    """The one LISTEN connection of a process on PostgreSQL; reconnects with backoff."""

    def __init__(self, database_url: str, signal: ClaimSignal, next_due: Callable[[], Awaitable[datetime | None]]) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._signal = signal
        self._next_due = next_due
        self.listening = asyncio.Event()
        self._refreshing: asyncio.Task[None] | None = None
        signal.after_timer = self._refresh_due

    async def run(self) -> None:
        backoff = Backoff(0.1, 5.0)
        while True:
            try:
                await self._listen_once()
                backoff.reset()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("claim_listener_disconnected", error=str(error))
            self.listening.clear()
            await backoff.wait()

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._dsn)
        lost = asyncio.get_running_loop().create_future()
        connection.add_termination_listener(lambda _: lost.done() or lost.set_result(None))
        try:
            await connection.add_listener(CHANNEL, self._on_notification)
            self.listening.set()
            await self.catch_up()
            await lost
        finally:
            await connection.close()

    async def catch_up(self) -> None:
        """What was announced while nobody listened: wake every claim, set the next timer."""
        self._signal.wake()
        await self._set_next_timer()

    def _refresh_due(self) -> None:
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self._set_next_timer(), name="claim_timer_refresh")

    async def _set_next_timer(self) -> None:
        try:
            self._signal.wake_at(await self._next_due())
        except Exception:  # noqa: BLE001 - the database may be down: the re-check covers it
            log.warning("claim_timer_refresh_failed", exc_info=True)

    def _on_notification(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        sender, due = decode_due(payload)
        if sender != self._signal.process_id:
            self._signal.wake_at(due)
