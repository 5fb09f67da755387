"""The Worker's parts that run: handler registration, the claim loops, the running handlers,
and the shutdown (see the package's docstring for what a handler's end means)."""


import asyncio
import inspect
import logging
import os
import signal
import socket
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import grpc
from google.protobuf import json_format
from job.v1 import job_pb2

from services.backoff import Backoff
from services.client.breakers import BreakerClient, Guard, OutcomePolicy
from services.client.jobs import JobClient
from services.client.worker.finishes import FinishBatcher, finish_raised, finish_returned
from services.client.worker.leases import LeaseKeeper

log = logging.getLogger("services.client.worker")

Handler = Callable[["JobContext"], Awaitable[Mapping[str, Any] | None]]

MAX_CONCURRENCY = 1000  # what one ClaimJobs, RenewLeases or FinishJobs call takes
# A claim that fails with one of these is retried after a pause; anything else stops the worker.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED})


def _whole_numbers_as_int(value: Any) -> Any:
    """A Struct keeps every number as a double: 7 comes back 7.0. Whole ones go back to int."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_int(v) for v in value]
    return value


class JobContext:
    """What a handler gets: the claimed job (`job`, the message), its `payload` as a dict (whole
    numbers as int), and guards for the providers it declared."""

    def __init__(self, job: job_pb2.Job, breakers: BreakerClient) -> None:
        self.job = job
        self.payload: dict[str, Any] = _whole_numbers_as_int(json_format.MessageToDict(job.payload))
        self._breakers = breakers

    @property
    def id(self) -> str:
        return self.job.id

    @property
    def job_type(self) -> str:
        return self.job.job_type

    @property
    def attempts(self) -> int:
        """Attempts spent before this run (provider failures spend none)."""
        return self.job.attempts

    @property
    def dependencies(self) -> tuple[str, ...]:
        return tuple(self.job.dependencies)

    def guard(self, dependency: str, policy: OutcomePolicy | None = None) -> Guard:
        """The breaker guard of `dependency` (an async context manager): refuses at once with
        `BreakerOpen` while its breaker is open, and records the call's outcome, classified by
        `policy` (which exceptions are the provider's failures; by default every one). Only the
        job's declared dependencies can be blamed, so guarding another is an error."""
        if dependency not in self.job.dependencies:
            raise ValueError(
                f"{dependency!r} is not a dependency of job {self.job.id} ({', '.join(self.job.dependencies)});"
                " declare it when creating the job"
            )
        return self._breakers.guard(dependency, policy)


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        jobs: JobClient | None = None,
        breakers: BreakerClient | None = None,
        *,
        worker_id: str | None = None,
        concurrency: int = 8,
        lease_s: float = 30.0,
        claim_wait_s: float = 20.0,
        grace_s: float = 30.0,
        finish_batch: int = 100,
        batch_window_s: float = 0.005,
    ) -> None:
        if not 1 <= concurrency <= MAX_CONCURRENCY or lease_s < 1 or grace_s < 0 or not 1 <= claim_wait_s <= 60:
            raise ValueError(
                f"concurrency must be 1..{MAX_CONCURRENCY}, lease_s at least 1, grace_s not negative and claim_wait_s 1..60"
            )
        self.jobs = jobs
        self.breakers = breakers
        self.worker_id = worker_id or default_worker_id()
        self.concurrency = concurrency
        self.lease_s = lease_s
        self.claim_wait_s = claim_wait_s
        self.grace_s = grace_s
        self.finish_batch = finish_batch
        self.batch_window_s = batch_window_s
        self.handlers: dict[str, Handler] = {}
        self._stopping = asyncio.Event()

    def handler(self, job_type: str) -> Callable[[Handler], Handler]:
        """Registers the decorated coroutine function as the handler of `job_type`."""

        def register(function: Handler) -> Handler:
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"the handler of {job_type!r} must be an async function")
            if job_type in self.handlers:
                raise ValueError(f"job type {job_type!r} already has a handler")
            self.handlers[job_type] = function
            return function

        return register

    def stop(self) -> None:
        """Asks a running `run()` to stop claiming, drain and return."""
        self._stopping.set()

    async def run(self, jobs: JobClient | None = None, breakers: BreakerClient | None = None, *, handle_signals: bool = True) -> None:
        """Runs until `stop()`, SIGTERM or SIGINT. The clients are the caller's to close."""
        jobs, breakers = jobs or self.jobs, breakers or self.breakers
        if jobs is None or breakers is None or not self.handlers:
            raise ValueError("a worker needs a JobClient, a BreakerClient and at least one handler")
        loop = asyncio.get_running_loop()
        signals = (signal.SIGTERM, signal.SIGINT) if handle_signals else ()
        for number in signals:
            loop.add_signal_handler(number, self.stop)
        try:
            await _Run(self, jobs, breakers).until(self._stopping)
        finally:
            self._stopping.clear()  # the worker can run again
            for number in signals:
                loop.remove_signal_handler(number)


class Slots:
    """The worker's concurrency, shared by its claim loops (one per job type): a claim reserves
    free slots before it is sent and gives back those it did not fill, so the handlers running
    never exceed the limit. A loop reserves at most `share` at a time, so a waiting claim of an
    idle job type never holds every slot.

    When fewer than `share` are free, a reservation waits `gather_s` for more to free up: short
    handlers end one by one, and claiming each freed slot on its own would cost a claim per job
    (one transaction in job_svc each) instead of a claim per batch."""

    def __init__(self, total: int, gather_s: float) -> None:
        self.free = total
        self._gather_s = gather_s
        self._freed = asyncio.Event()

    async def reserve(self, share: int) -> int:
        gathered = False
        while True:
            if self.free >= share or (self.free > 0 and gathered):
                taken = min(self.free, share)
                self.free -= taken
                return taken
            if self.free > 0:
                await asyncio.sleep(self._gather_s)
                gathered = True
            else:
                self._freed.clear()
                await self._freed.wait()

    def give_back(self, count: int) -> None:
        self.free += count
        self._freed.set()


class _Run:
    """One `Worker.run()`: the claim loops, the running handlers, leases and finishes.

    The slot of a handler that ended with a finish goes with its finish: the FinishJobs call
    that sends it claims, in the same call, the next jobs for the slots of its batch
    (`next_claim`, one round trip per cycle instead of a ClaimJobs and a FinishJobs). Slots that
    claim finds no job for go back to the claim loops, which wait for work with ClaimJobs."""

    def __init__(self, worker: Worker, jobs: JobClient, breakers: BreakerClient) -> None:
        self.worker = worker
        self.jobs = jobs
        self.breakers = breakers
        self.running: dict[str, asyncio.Task[None]] = {}
        self.abandoned: set[asyncio.Task[None] | None] = set()  # handlers whose lease was lost
        self.carried: dict[str, str] = {}  # job id of a finish not yet sent -> job type of the slot it holds
        self.stopping = False  # no more claims, finishes' included
        self.slots = Slots(worker.concurrency, gather_s=worker.batch_window_s)
        self.leases = LeaseKeeper(self._renew, worker.lease_s, self._lease_lost)
        self.finishes = FinishBatcher(
            self._send_finishes, max_batch=worker.finish_batch, delay_s=worker.batch_window_s,
            settled=lambda job_id, applied: self.leases.release(job_id),
        )

    async def until(self, stopping: asyncio.Event) -> None:
        self.leases.start()
        self.finishes.start()
        share = max(1, self.worker.concurrency // len(self.worker.handlers))
        claims = [asyncio.create_task(self._claim_loop(job_type, share), name=f"claims-{job_type}") for job_type in self.worker.handlers]
        stopped = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait([*claims, stopped], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stopping = True
            for task in (*claims, stopped):
                task.cancel()  # ends a waiting claim at once
            await asyncio.gather(*claims, stopped, return_exceptions=True)
            await self._drain()
            await self.finishes.close()
            await self.leases.close()
        for task in claims:
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _claim_loop(self, job_type: str, share: int) -> None:
        worker, loop = self.worker, asyncio.get_running_loop()
        backoff = Backoff(0.1, 5.0)
        while True:
            reserved = await self.slots.reserve(share)
            claimed_at = loop.time()
            try:
                claimed = await self.jobs.claim(
                    worker.worker_id, reserved, lease_s=worker.lease_s, wait_s=worker.claim_wait_s, job_type=job_type
                )
            except grpc.aio.AioRpcError as error:
                self.slots.give_back(reserved)
                if error.code() not in TRANSIENT:
                    raise
                log.warning("claim_failed code=%s", error.code().name)
                await backoff.wait()
                continue
            except BaseException:
                self.slots.give_back(reserved)
                raise
            self.slots.give_back(reserved - len(claimed))
            if claimed:
                backoff.reset()
            elif loop.time() - claimed_at < worker.claim_wait_s / 2:
                await backoff.wait()  # answered early with nothing: job_svc is shutting down, or lost a race
            self._start(claimed, claimed_at)

    def _start(self, claimed: Iterable[job_pb2.Job], claimed_at: float) -> None:
        """Runs claimed jobs, each in a slot reserved for it, their leases held from `claimed_at`
        (loop time taken before the claim was sent)."""
        for job in claimed:
            self.leases.hold(job.id, claimed_at)
            self.running[job.id] = asyncio.create_task(self._handle(job), name=f"job-{job.id}")

    async def _handle(self, job: job_pb2.Job) -> None:
        this = asyncio.current_task()
        submitted = False
        try:
            try:
                value = await self.worker.handlers[job.job_type](JobContext(job, self.breakers))
            except Exception as error:  # noqa: BLE001 - every handler error is the job's end
                finish = finish_raised(job, error)
            else:
                finish = finish_returned(job, value)
            if this not in self.abandoned:  # a handler may outlive the cancellation of a lost lease
                self.finishes.submit(finish)
                submitted = True
        finally:
            self.abandoned.discard(this)
            if self.running.get(job.id) is this:
                del self.running[job.id]
            if submitted:
                self.carried[job.id] = job.job_type  # its finish claims the slot's next job
            else:
                self.slots.give_back(1)

    def _lease_lost(self, job_id: str) -> None:
        task = self.running.get(job_id)
        if task is not None:
            self.abandoned.add(task)
            task.cancel()

    async def _drain(self) -> None:
        if not self.running:
            return
        log.info("draining jobs=%d grace_s=%s", len(self.running), self.worker.grace_s)
        tasks = list(self.running.values())
        _, late = await asyncio.wait(tasks, timeout=self.worker.grace_s)
        for task in late:
            task.cancel()  # its job is left to its lease
        await asyncio.gather(*tasks, return_exceptions=True)
        if late:
            log.warning("left_to_leases jobs=%d", len(late))

    async def _renew(self, job_ids: list[str], lease_s: float) -> list[str]:
        renewals = await self.jobs.renew(self.worker.worker_id, job_ids, lease_s, timeout_s=lease_s / 3)
        return [r.id for r in renewals if r.lease_result != job_pb2.LEASE_RESULT_HELD]

    async def _send_finishes(self, batch: list[job_pb2.JobFinish]) -> list[job_pb2.JobFinishResult]:
        """FinishJobs, claiming the next jobs for the slots its finishes carry: of the job type
        most of them ran (the others go back to the claim loops). A batch sent again (after an
        error) carries none: its slots went back when it was first sent. While stopping, nothing
        is claimed."""
        slots = Counter(self.carried.pop(finish.id) for finish in batch if finish.id in self.carried)
        if self.stopping or not slots:
            self.slots.give_back(slots.total())
            return await self.jobs.finish(self.worker.worker_id, batch)
        [(job_type, count)] = slots.most_common(1)
        self.slots.give_back(slots.total() - count)
        claimed_at = asyncio.get_running_loop().time()
        try:
            answer = await self.jobs.finish_and_claim(self.worker.worker_id, batch, count, lease_s=self.worker.lease_s, job_type=job_type)
        except BaseException:
            self.slots.give_back(count)
            raise
        claimed = list(answer.claimed_jobs)
        if self.stopping and claimed:  # answered after the stop: as a claim the stop cut short
            log.warning("left_to_leases jobs=%d claimed_as_the_worker_stopped", len(claimed))
            claimed = []
        self.slots.give_back(count - len(claimed))
        self._start(claimed, claimed_at)
        return list(answer.results)
