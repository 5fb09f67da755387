"""Delivers the job outbox: JobService `PauseJobs`/`ResumeJobs` calls, in order, until accepted.

Pausing or resuming a campaign by hand writes a row to `job_commands` in the same transaction
as the campaign change. The forwarder sends the oldest row, deletes it once job_svc accepted
it, and otherwise retries it with capped exponential backoff (both calls are idempotent, so a
repeat after a crash is harmless). Only one forwarder per database delivers (a PostgreSQL
advisory lock), so rows keep their order even with several replicas.

No single row stops the outbox: while job_svc cannot be reached the oldest row is retried for as
long as it takes (every row would fail alike), but a row refused, or failing MAX_ATTEMPTS times
for a reason of its own, is set aside (`given_up_at`, kept with its error, logged, and counted in
`campaign_job_command_outbox_set_aside`) and the rows behind it go on.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import grpc
import structlog
from job.v1 import job_pb2, job_pb2_grpc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign_svc.store import CampaignStore, JobCommand, JobCommandAction
from services.backoff import Backoff
from services.client.channel import bearer_metadata, open_channel

log = structlog.get_logger()

# job_svc cannot be reached or will not talk to us: nothing to do with the row itself.
PEER_DOWN_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAUTHENTICATED})
# The request itself can never succeed: set aside at once.
PERMANENT_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})
# Any other failure: retried this many times, then set aside.
MAX_ATTEMPTS = 5
ADVISORY_LOCK_KEY = 0x63616D70  # "camp"


class JobCallError(Exception):
    def __init__(self, message: str, code: grpc.StatusCode) -> None:
        super().__init__(message)
        self.peer_down = code in PEER_DOWN_CODES
        self.permanent = code in PERMANENT_CODES


class JobServiceClient:
    """Sends one outbox row to JobService."""

    def __init__(self, target: str, timeout_s: float, service_token: str | None) -> None:
        self._channel = open_channel(target)
        self._stub = job_pb2_grpc.JobServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._token_metadata = bearer_metadata(service_token)

    async def send(self, command: JobCommand) -> None:
        metadata = (("x-request-id", command.request_id or f"campaign-job-command-{command.id}"), *self._token_metadata)
        try:
            if command.action is JobCommandAction.PAUSE:
                request = job_pb2.PauseJobsRequest(campaign_id=command.campaign_id, reason=command.reason)
                await self._stub.PauseJobs(request, timeout=self._timeout_s, metadata=metadata)
            else:
                request = job_pb2.ResumeJobsRequest(campaign_id=command.campaign_id)
                await self._stub.ResumeJobs(request, timeout=self._timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            raise JobCallError(f"{error.code().name}: {error.details()}", error.code()) from None

    async def close(self) -> None:
        await self._channel.close()


class JobCommandForwarder:
    def __init__(
        self,
        engine: AsyncEngine,
        store: CampaignStore,
        send: Callable[[JobCommand], Awaitable[None]],
        *,
        backoff_initial_s: float = 0.1,
        backoff_max_s: float = 10.0,
        idle_poll_s: float = 1.0,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        self._engine = engine
        self._max_attempts = max_attempts
        self._store = store
        self._send = send
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._idle_poll_s = idle_poll_s
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after a transaction that wrote a row commits: deliver it now, not at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                async with self._leadership() as leading:
                    if leading:
                        await self._forward(leading)
                    else:
                        await asyncio.sleep(self._idle_poll_s * 5)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - storage trouble: keep going, the rows are durable
                log.exception("job_outbox_failed")
                await asyncio.sleep(self._idle_poll_s)

    @contextlib.asynccontextmanager
    async def _leadership(self) -> AsyncIterator[Callable[[], Awaitable[bool]] | None]:
        """Yields a liveness check while this process is the database's only forwarder (always
        so on SQLite, which has a single writer process), None if another replica is."""
        if self._engine.dialect.name != "postgresql":
            yield _always_alive
            return
        async with self._engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            if not await connection.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}):
                yield None
                return

            async def alive() -> bool:
                await connection.scalar(text("SELECT 1"))  # raises when the session (and lock) is gone
                return True

            try:
                yield alive
            finally:
                with contextlib.suppress(Exception):
                    await connection.scalar(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})

    async def _forward(self, alive: Callable[[], Awaitable[bool]]) -> None:
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        while await alive():
            self._wake.clear()
            async with self._engine.connect() as connection:
                command = await self._store.next_job_command(connection)
            if command is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)
                continue
            try:
                await self._send(command)
            except JobCallError as error:
                if not await self._failed(command, error):
                    await backoff.wait()
                continue
            async with self._engine.begin() as connection:
                await self._store.delete_job_command(connection, command.id)
            log.info("job_command_delivered", campaign_id=command.campaign_id, action=command.action.value, attempts=command.attempts + 1)
            backoff.reset()

    async def _failed(self, command: JobCommand, error: JobCallError) -> bool:
        """Records the failure; True when the row was set aside (go on at once with the next)."""
        # A call that never reached job_svc is no attempt of the row's.
        attempts = command.attempts + (0 if error.peer_down else 1)
        set_aside = not error.peer_down and (error.permanent or attempts >= self._max_attempts)
        async with self._engine.begin() as connection:
            await self._store.record_job_command_failure(
                connection, command.id, str(error), attempted=not error.peer_down, set_aside_at=datetime.now(UTC) if set_aside else None
            )
        event = "job_command_set_aside" if set_aside else "job_command_retrying"
        (log.error if set_aside else log.warning)(
            event, campaign_id=command.campaign_id, action=command.action.value, attempts=attempts, error=str(error)
        )
        return set_aside


async def _always_alive() -> bool:
    return True
