"""How a handler's end becomes a job's finish, and the batcher that sends finishes together.

`finish_returned(job, value)` and `finish_raised(job, error)` decide what a job's end means:
- a return value: completion, the value (a JSON-able mapping, or None) stored as the result;
- `BreakerOpen`, or an exception a guard recorded as a provider's failure: a failure naming
  that provider (`failed_dependency`), so job_svc pauses the job (or, while the provider's
  breaker is still closed, retries it later) with no attempt spent;
- any other exception: an ordinary failure (an attempt spent) with the error's message.

`FinishBatcher` sends them in FinishJobs calls of up to `max_batch`, each after at most
`delay_s` of collecting, so a worker's round trips do not grow with its jobs. Sending runs in a
task of its own: a handler cancelled after submitting cannot cut a finish short, and `close()`
flushes everything submitted before it returns.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import grpc
from job.v1 import job_pb2

from services.backoff import Backoff
from services.client.breakers import failed_dependency
from services.client.jobs import completion, failure, struct

log = logging.getLogger("services.client.worker")

MAX_ERROR_CHARS = 2000
DELIVERY_ATTEMPTS = 8
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def describe(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:MAX_ERROR_CHARS]


def finish_returned(job: job_pb2.Job, value: Any) -> job_pb2.JobFinish:
    if value is None:
        finish = completion()
    elif not isinstance(value, Mapping):
        finish = failure(f"the handler returned a {type(value).__name__}, not a mapping (a JSON object) or None")
    else:
        try:
            finish = completion(struct(value))
        except (TypeError, ValueError) as error:
            finish = failure(f"the handler's result is not JSON-able: {describe(error)}")
    finish.id = job.id
    finish.outcomes_recorded = True
    return finish


def finish_raised(job: job_pb2.Job, error: BaseException) -> job_pb2.JobFinish:
    """Blames the provider when the error was its breaker refusing or a failure a guard
    recorded against it, and it is one of the job's dependencies; otherwise the job itself."""
    dependency = failed_dependency(error)
    finish = failure(describe(error), dependency if dependency in job.dependencies else "")
    finish.id = job.id
    finish.outcomes_recorded = True
    return finish


# FinishJobs: the finishes of one batch -> one result per finish, in order.
SendFinishes = Callable[[list[job_pb2.JobFinish]], Awaitable[list[job_pb2.JobFinishResult]]]


class FinishBatcher:
    def __init__(
        self,
        send: SendFinishes,
        *,
        max_batch: int = 100,
        delay_s: float = 0.005,
        settled: Callable[[str, bool], None] = lambda job_id, applied: None,
    ) -> None:
        self._send = send
        self._max_batch = max_batch
        self._delay_s = delay_s
        self._settled = settled  # (job id, applied?) once job_svc answered, or sending gave up
        self._queue: asyncio.Queue[job_pb2.JobFinish] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="finish-batcher")

    def submit(self, finish: job_pb2.JobFinish) -> None:
        self._queue.put_nowait(finish)

    async def close(self) -> None:
        """Sends whatever was submitted, then stops."""
        await self._queue.join()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            await self._collect(batch)
            try:
                await self._deliver(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _collect(self, batch: list[job_pb2.JobFinish]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._delay_s
        while len(batch) < self._max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), deadline - loop.time()))
            except TimeoutError:
                return

    async def _deliver(self, batch: list[job_pb2.JobFinish]) -> None:
        """Retries while job_svc is unreachable: a repeated finish of a job already finished is
        answered LOST by job_svc (the lease is gone with the first), never applied twice. Gives
        up after a while: those jobs' leases then expire and they run again. A batch refused as
        invalid (one result too large, say) is sent again item by item, so one bad item cannot
        sink the others; an item refused alone becomes an ordinary failure saying why."""
        backoff = Backoff(0.05, 2.0)
        for _ in range(DELIVERY_ATTEMPTS):
            try:
                results = await self._send(batch)
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    await self._deliver_one_by_one(batch, error)
                    return
                if error.code() not in RETRIED:
                    log.error("finishes_refused code=%s details=%s jobs=%d", error.code().name, error.details(), len(batch))
                    break
                log.warning("finishes_retry code=%s jobs=%d", error.code().name, len(batch))
                await backoff.wait()
                continue
            for result in results:
                applied = result.lease_result == job_pb2.LEASE_RESULT_HELD
                if not applied:
                    log.warning("lease_lost_result_not_applied job_id=%s", result.id)
                self._settled(result.id, applied)
            return
        for finish in batch:
            self._settled(finish.id, False)

    async def _deliver_one_by_one(self, batch: list[job_pb2.JobFinish], refusal: grpc.aio.AioRpcError) -> None:
        if len(batch) > 1:
            for finish in batch:
                await self._deliver([finish])
            return
        (finish,) = batch
        if finish.WhichOneof("outcome") == "failure" and not finish.failure.failed_dependency:
            log.error("finish_refused job_id=%s details=%s", finish.id, refusal.details())
            self._settled(finish.id, False)
            return
        replacement = failure(f"job_svc refused this job's finish: {refusal.details()}")
        replacement.id = finish.id
        await self._deliver([replacement])
