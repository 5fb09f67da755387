"""Delivers the job outbox: JobService `PauseJobs`/`ResumeJobs` calls, in order, until accepted.

Pausing or resuming a campaign by hand writes a row to `job_commands` in the same transaction
as the campaign change. The forwarder sends the oldest row, deletes it once job_svc accepted
it, and otherwise retries it with capped exponential backoff (both calls are idempotent, so a
repeat after a crash is harmless). Only one forwarder per database delivers (a PostgreSQL
advisory lock), so rows keep their order even with several replicas.
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

# Codes meaning the request itself can never succeed: retrying would block the outbox for ever.
PERMANENT_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT})
ADVISORY_LOCK_KEY = 0x63616D70  # "camp"


class JobCallError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class JobServiceClient:
    """Sends one outbox row to JobService."""

    def __init__(self, target: str, timeout_s: float, service_token: str | None) -> None:
        self._channel = open_channel(target)
        self._stub = job_pb2_grpc.JobServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._token_metadata = bearer_metadata(service_token)

    async def send(self, command: JobCommand) -> None:
        metadata = (("x-request-id", f"campaign-job-command-{command.id}"), *self._token_metadata)
        try:
            if command.action is JobCommandAction.PAUSE:
                request = job_pb2.PauseJobsRequest(campaign_id=command.campaign_id, reason=command.reason)
                await self._stub.PauseJobs(request, timeout=self._timeout_s, metadata=metadata)
            else:
                request = job_pb2.ResumeJobsRequest(campaign_id=command.campaign_id)
                await self._stub.ResumeJobs(request, timeout=self._timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as error:
            raise JobCallError(f"{error.code().name}: {error.details()}", error.code() not in PERMANENT_CODES) from None

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
    ) -> None:
        self._engine = engine
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
                await self._failed(command, error)
                if error.retryable:
                    await backoff.wait()
                continue
            async with self._engine.begin() as connection:
                await self._store.delete_job_command(connection, command.id)
            log.info("job_command_delivered", campaign_id=command.campaign_id, action=command.action.value, attempts=command.attempts + 1)
            backoff.reset()

    async def _failed(self, command: JobCommand, error: JobCallError) -> None:
        give_up_at = None if error.retryable else datetime.now(UTC)
        async with self._engine.begin() as connection:
            await self._store.record_job_command_failure(connection, command.id, str(error), give_up_at)
        event = "job_command_retrying" if error.retryable else "job_command_given_up"
        (log.warning if error.retryable else log.error)(
            event, campaign_id=command.campaign_id, action=command.action.value, attempts=command.attempts + 1, error=str(error)
        )


async def _always_alive() -> bool:
    return True
