"""job_svc against pgqueuer, side by side on the same PostgreSQL server in one run, with a bare
grpc.aio job.v1 server as a third side: the ceiling of any Python grpc.aio server.

job_svc runs as its own process (`python -m job_svc`) with a breaker_svc process beside it
(memory store), as deployed; pgqueuer (asyncpg) runs in this process, as its users run it.
Both use one throw-away database (created and dropped). The third side, "bare grpc.aio"
(`python -m bench.bare_job_server`), serves job.v1 from a count of queued jobs with no storage
and no interceptors, and gets the same client calls as job_svc: what is left of a path's time
there is grpc.aio's and the client's, so bare/pgqueuer is the most any Python grpc.aio server
could reach against pgqueuer on that path. Each round runs every path on all three, rotating
which goes first, each run on an emptied queue (TRUNCATE; the bare server's count claimed
away), and the tables print medians over the rounds and the ratios job_svc/pgqueuer,
job_svc/bare and bare/pgqueuer: their median and spread (min..max).

    make install && .venv/bin/python -m bench.job_queue    # ~2-3 min on 2 cores; --help for sizes

Paths (N = --jobs, default 5,000):
- enqueue, one job per call, 16 concurrent callers: CreateJob / `Queries.enqueue` (one
  asyncpg pool of 16 connections);
- enqueue in batches: CreateJobs of 1,000 (its limit), 4 in flight at a time on one channel
  as `JobClient.create_many` sends them / one `Queries.enqueue` of N. Every CreateJobs here
  asks for JOB_VIEW_BASIC (ids and statuses back, not whole jobs), since pgqueuer's enqueue
  returns only ids, and carries no request ids (pgqueuer's enqueue has no dedupe key here);
- drain of N queued jobs by 4 workers, each with its own channel / connection:
  ClaimJobs(max 10) then one CompleteJob per job; or one call per batch: a first
  ClaimJobs(max 10), then FinishJobs of the claim with `next_claim` (max 10) claiming the
  next batch in the same call, until it claims none (a last ClaimJobs makes sure the queue
  is empty); against 4 `QueueManager`s in drain mode with batch_size 10 (their completions
  are buffered and written in batches; the time ends when every manager has returned,
  buffers flushed);
- end to end: one producer enqueuing batches of 100 while 4 workers take them: a waiting
  ClaimJobs(max 10, wait 1 s) when a worker holds no job, else FinishJobs with `next_claim`
  (max 10), against 4 continuous `QueueManager`s; time from the first enqueue until the last
  job is finished;
- wake-up: one idle worker (a waiting ClaimJobs / a `QueueManager` woken by LISTEN/NOTIFY),
  one job enqueued at a time; latency from sending the enqueue until the worker has the job.

Paths whose job.v1 calls a running server answers UNIMPLEMENTED (or whose `wait` it ignores)
print why instead of a figure.
"""

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct
from job.v1 import job_pb2, job_pb2_grpc
from pgqueuer import AsyncpgDriver, AsyncpgPoolDriver, PgQueuer, Queries
from pgqueuer.models import Job as PgqJob
from pgqueuer.types import QueueExecutionMode

from bench import bare_job_server
from bench.common import p50_p99_ms, print_table
from tests.support.databases import fresh_postgres_database
from tests.support.processes import ServiceProcess, free_port

DEPENDENCY = "openai"
JOB_TYPE = "bench"
CALLERS = 16
WORKERS = 4
CLAIM_BATCH = 10
CREATE_BATCH = 1000  # CreateJobs' limit
CREATES_IN_FLIGHT = 4  # JobClient.create_many's default
MAX_CLAIM = 1000  # ClaimJobs' limit
STREAM_BATCH = 100  # the end-to-end producer's batches
CLAIM_WAIT_S = 1
LEASE = Duration(seconds=300)
WAKE_GAP_S = 0.02  # between wake-up samples, so each finds an idle worker
JOB_SVC, BARE, PGQUEUER = "job_svc", "bare grpc.aio", "pgqueuer"  # the sides


def payload(n: int) -> Struct:
    struct = Struct()
    struct.update({"n": n})
    return struct


def create_request(n: int) -> job_pb2.CreateJobRequest:
    return job_pb2.CreateJobRequest(job_type=JOB_TYPE, dependencies=[DEPENDENCY], payload=payload(n))


def claim_request(worker: str, wait_s: float = 0) -> job_pb2.ClaimJobsRequest:
    return job_pb2.ClaimJobsRequest(
        worker_id=worker, dependencies=[DEPENDENCY], max_jobs=CLAIM_BATCH, lease_duration=LEASE, wait=Duration(seconds=int(wait_s))
    )


def spread(ns: int, n: int) -> list[range]:
    """n ranges covering 0..ns-1 as evenly as possible (one per caller)."""
    return [range(i, ns, n) for i in range(n)]


class NotAvailable(Exception):
    """A running job.v1 server lacks a call this path needs (the message says which)."""


# -- job.v1 servers: job_svc and the bare grpc.aio server --------------------------------------


@dataclass
class JobV1Side(ABC):
    """A job.v1 server run as processes (the last one serves job.v1); the calls each path makes
    over real channels."""

    name: str
    processes: list[ServiceProcess]
    missing: set[str] = field(default_factory=set)

    @property
    def address(self) -> str:
        return self.processes[-1].address

    def start(self) -> None:
        for process in self.processes:
            process.start()

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    @abstractmethod
    async def empty(self) -> None:
        """Before each run: no job left from the run before."""

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    async def probe(self) -> None:
        """Which new job.v1 calls the running server serves: one that implements a batch call
        refuses an empty batch as INVALID_ARGUMENT; one that implements waiting claims takes
        the wait on an empty queue."""
        async with self.channel() as channel:
            stub = job_pb2_grpc.JobServiceStub(channel)
            for name, call in (
                ("CreateJobs", stub.CreateJobs(job_pb2.CreateJobsRequest())),
                ("FinishJobs", stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="probe"))),
            ):
                try:
                    await call
                    self.missing.add(name)  # an empty batch accepted: not the documented call
                except grpc.aio.AioRpcError as error:
                    if error.code() != grpc.StatusCode.INVALID_ARGUMENT:  # UNIMPLEMENTED, or INTERNAL via the interceptor
                        self.missing.add(name)
            started = time.perf_counter()
            request = job_pb2.ClaimJobsRequest(worker_id="probe", dependencies=["nothing-here"], max_jobs=1, wait=Duration(seconds=1))
            await stub.ClaimJobs(request)
            if time.perf_counter() - started < 0.5:
                self.missing.add("ClaimJobs.wait")

    def require(self, *calls: str) -> None:
        lacking = [call for call in calls if call in self.missing]
        if lacking:
            raise NotAvailable(f"{self.name} lacks {', '.join(lacking)}")

    async def enqueue_one(self, n: int) -> float:
        async with self.channel() as channel:
            stub = job_pb2_grpc.JobServiceStub(channel)

            async def caller(numbers: range) -> None:
                for i in numbers:
                    await stub.CreateJob(create_request(i))

            started = time.perf_counter()
            await asyncio.gather(*(caller(numbers) for numbers in spread(n, CALLERS)))
            return time.perf_counter() - started

    async def enqueue_batch(self, n: int) -> float:
        """CreateJobs of 1,000 (its limit), CREATES_IN_FLIGHT of them at a time on one channel,
        as services.client's JobClient.create_many sends a longer list."""
        self.require("CreateJobs")
        async with self.channel() as channel:
            stub, calls = job_pb2_grpc.JobServiceStub(channel), asyncio.Semaphore(CREATES_IN_FLIGHT)

            async def create(start: int) -> None:
                async with calls:
                    await self._create(stub, range(start, min(n, start + CREATE_BATCH)))

            started = time.perf_counter()
            await asyncio.gather(*(create(start) for start in range(0, n, CREATE_BATCH)))
            return time.perf_counter() - started

    async def _create_batches(self, stub: job_pb2_grpc.JobServiceStub, n: int, size: int) -> None:
        for start in range(0, n, size):
            await self._create(stub, range(start, min(n, start + size)))

    @staticmethod
    async def _create(stub: job_pb2_grpc.JobServiceStub, numbers: range) -> None:
        items = [create_request(i) for i in numbers]
        await stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=items, view=job_pb2.JOB_VIEW_BASIC))

    async def fill(self, n: int) -> None:
        """n pending jobs, untimed: with CreateJobs when served, else 16 CreateJob callers."""
        if "CreateJobs" in self.missing:
            await self.enqueue_one(n)
            return
        async with self.channel() as channel:
            await self._create_batches(job_pb2_grpc.JobServiceStub(channel), n, CREATE_BATCH)

    async def drain(self, n: int, batched: bool) -> float:
        if batched:
            self.require("FinishJobs")
        channels = [self.channel() for _ in range(WORKERS)]
        try:
            started = time.perf_counter()
            done = await asyncio.gather(
                *(drain_worker(job_pb2_grpc.JobServiceStub(channel), f"w{i}", batched) for i, channel in enumerate(channels))
            )
            elapsed = time.perf_counter() - started
        finally:
            for channel in channels:
                await channel.close()
        assert sum(done) == n, f"{self.name} drained {sum(done)} jobs of {n}"
        return elapsed

    async def end_to_end(self, n: int) -> float:
        self.require("CreateJobs", "ClaimJobs.wait", "FinishJobs")
        channels = [self.channel() for _ in range(WORKERS + 1)]
        finished, all_done = [0], asyncio.Event()
        try:
            stubs = [job_pb2_grpc.JobServiceStub(channel) for channel in channels]
            started = time.perf_counter()
            workers = [asyncio.create_task(stream_worker(stub, f"e{i}", n, finished, all_done)) for i, stub in enumerate(stubs[1:])]
            await self._create_batches(stubs[0], n, STREAM_BATCH)
            await all_done.wait()
            elapsed = time.perf_counter() - started
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            for channel in channels:
                await channel.close()
        return elapsed

    async def wakeups(self, samples: int) -> list[float]:
        self.require("ClaimJobs.wait")
        async with self.channel() as worker_channel, self.channel() as producer_channel:
            worker_stub, producer = job_pb2_grpc.JobServiceStub(worker_channel), job_pb2_grpc.JobServiceStub(producer_channel)
            arrivals: asyncio.Queue[float] = asyncio.Queue()

            async def worker() -> None:
                while True:
                    claimed = (await worker_stub.ClaimJobs(claim_request("waiter", wait_s=10))).jobs
                    if claimed:
                        arrivals.put_nowait(time.perf_counter())
                        for job in claimed:
                            await worker_stub.CompleteJob(job_pb2.CompleteJobRequest(id=job.id, worker_id="waiter"))

            task = asyncio.create_task(worker())
            try:
                return await sample_wakeups(lambda i: producer.CreateJob(create_request(i)), arrivals, samples)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@dataclass
class JobSvcSide(JobV1Side):
    """job_svc with a breaker_svc beside it (memory store), as deployed, on the bench's database."""

    database_url: str = field(kw_only=True)

    @classmethod
    def on(cls, database_url: str, log_dir: Path) -> "JobSvcSide":
        breaker_port, job_port = free_port(), free_port()
        breaker_env = {"BREAKER_STORE": "memory", "BREAKER_PORT": str(breaker_port), "LOG_LEVEL": "warning"}
        breaker = ServiceProcess("breaker_svc", breaker_port, breaker_env, log_dir)
        env = {
            "JOB_DATABASE_URL": database_url, "BREAKER_TARGET": breaker.address, "JOB_PORT": str(job_port), "LOG_LEVEL": "warning",
        }
        return cls(JOB_SVC, [breaker, ServiceProcess("job_svc", job_port, env, log_dir)], database_url=database_url)

    async def empty(self) -> None:
        await Tables(self.database_url).truncate()


@dataclass
class BareSide(JobV1Side):
    """bench.bare_job_server: job.v1 on a bare grpc.aio server with no storage, what any Python
    grpc.aio server could reach at most on each path."""

    @classmethod
    def on(cls, log_dir: Path) -> "BareSide":
        port = free_port()
        return cls(BARE, [ServiceProcess("bench.bare_job_server", port, {bare_job_server.PORT_VARIABLE: str(port)}, log_dir)])

    async def empty(self) -> None:
        """Its queue is a count: claims what the run before left."""
        async with self.channel() as channel:
            stub = job_pb2_grpc.JobServiceStub(channel)
            while (await stub.ClaimJobs(job_pb2.ClaimJobsRequest(worker_id="empty", max_jobs=MAX_CLAIM))).jobs:
                pass


async def drain_worker(stub: job_pb2_grpc.JobServiceStub, name: str, batched: bool) -> int:
    """Claims CLAIM_BATCH at a time until the queue is empty. Either one CompleteJob per job,
    or one call per batch: FinishJobs of the claim, which claims the next CLAIM_BATCH
    (`next_claim`), until it finds none; a ClaimJobs then makes sure the queue is empty.
    Returns the jobs it finished."""
    done = 0
    while claimed := (await stub.ClaimJobs(claim_request(name))).jobs:
        if batched:
            while claimed:
                done += len(claimed)
                claimed = await finish_all(stub, name, claimed)
        else:
            # Each job of a claim completes on its own, as soon as it is done: pgqueuer's
            # QueueManager runs the jobs of a batch as concurrent tasks, as services.client's
            # Worker does.
            await asyncio.gather(*(stub.CompleteJob(job_pb2.CompleteJobRequest(id=job.id, worker_id=name)) for job in claimed))
            done += len(claimed)
    return done


async def finish_all(stub: job_pb2_grpc.JobServiceStub, name: str, claimed: Sequence[job_pb2.Job]) -> Sequence[job_pb2.Job]:
    """FinishJobs of a whole claim, claiming the next CLAIM_BATCH in the same call: returns
    those (none: nothing was claimable)."""
    finishes = [job_pb2.JobFinish(id=job.id, completion=job_pb2.JobCompletion()) for job in claimed]
    next_claim = job_pb2.NextClaim(max_jobs=CLAIM_BATCH, dependencies=[DEPENDENCY], lease_duration=LEASE)
    answer = await stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id=name, finishes=finishes, next_claim=next_claim))
    assert all(r.lease_result == job_pb2.LEASE_RESULT_HELD for r in answer.results), f"{name} lost a lease"
    return answer.claimed_jobs


async def stream_worker(stub: job_pb2_grpc.JobServiceStub, name: str, n: int, finished: list[int], all_done: asyncio.Event) -> None:
    """Until all n jobs are finished (by any worker): a waiting claim when it holds no job,
    else FinishJobs claiming the next jobs."""
    claimed: Sequence[job_pb2.Job] = []
    while True:
        if not claimed:
            claimed = (await stub.ClaimJobs(claim_request(name, wait_s=CLAIM_WAIT_S))).jobs
            continue
        count = len(claimed)
        claimed = await finish_all(stub, name, claimed)
        finished[0] += count
        if finished[0] >= n:
            all_done.set()


# -- pgqueuer --------------------------------------------------------------------------------


@dataclass
class PgqSide:
    """pgqueuer on the same database, used as its README and benchmark script use it."""

    dsn: str
    name = PGQUEUER

    async def install(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            await Queries(AsyncpgDriver(connection)).install()
        finally:
            await connection.close()

    async def enqueue_one(self, n: int) -> float:
        async with asyncpg.create_pool(self.dsn, min_size=CALLERS, max_size=CALLERS) as pool:
            queries = Queries(AsyncpgPoolDriver(pool))

            async def caller(numbers: range) -> None:
                for i in numbers:
                    await queries.enqueue(JOB_TYPE, pgq_payload(i), 0)

            started = time.perf_counter()
            await asyncio.gather(*(caller(numbers) for numbers in spread(n, CALLERS)))
            return time.perf_counter() - started

    async def enqueue_batch(self, n: int) -> float:
        connection = await asyncpg.connect(self.dsn)
        try:
            queries = Queries(AsyncpgDriver(connection))
            started = time.perf_counter()
            await enqueue_range(queries, 0, n)
            return time.perf_counter() - started
        finally:
            await connection.close()

    async def empty(self) -> None:
        await Tables(self.dsn).truncate()

    async def fill(self, n: int) -> None:
        await self.enqueue_batch(n)

    async def drain(self, n: int) -> float:
        handled = [0]
        async with self.managers(handled) as managers:
            started = time.perf_counter()
            await asyncio.gather(*(qm.run(batch_size=CLAIM_BATCH, mode=QueueExecutionMode.drain) for qm in managers))
            elapsed = time.perf_counter() - started
        assert handled[0] == n, f"pgqueuer drained {handled[0]} jobs of {n}"
        return elapsed

    async def end_to_end(self, n: int) -> float:
        handled, all_done = [0], asyncio.Event()
        async with self.managers(handled, lambda: handled[0] >= n and all_done.set()) as managers, self.connection() as producer:
            started = time.perf_counter()
            runs = [asyncio.create_task(qm.run(batch_size=CLAIM_BATCH)) for qm in managers]
            for start in range(0, n, STREAM_BATCH):
                await enqueue_range(producer, start, min(n, start + STREAM_BATCH))
            await all_done.wait()
            for qm in managers:
                qm.shutdown.set()
            await asyncio.gather(*runs)  # their completion buffers are flushed on the way out
            return time.perf_counter() - started

    async def wakeups(self, samples: int) -> list[float]:
        arrivals: asyncio.Queue[float] = asyncio.Queue()
        async with self.managers([0], lambda: arrivals.put_nowait(time.perf_counter()), count=1) as (manager,), self.connection() as producer:
            run = asyncio.create_task(manager.run(batch_size=CLAIM_BATCH))
            try:
                return await sample_wakeups(lambda i: producer.enqueue(JOB_TYPE, pgq_payload(i), 0), arrivals, samples)
            finally:
                manager.shutdown.set()
                await run

    def managers(self, handled: list[int], on_job: Callable[[], object] = lambda: None, count: int = WORKERS) -> "Managers":
        return Managers(self.dsn, count, handled, on_job)

    def connection(self) -> "QueriesConnection":
        return QueriesConnection(self.dsn)


def pgq_payload(n: int) -> bytes:
    return json.dumps({"n": n}).encode()


async def enqueue_range(queries: Queries, start: int, stop: int) -> None:
    size = stop - start
    await queries.enqueue([JOB_TYPE] * size, [pgq_payload(i) for i in range(start, stop)], [0] * size)


class Managers:
    """`count` PgQueuer workers (a QueueManager and a SchedulerManager each, as its README
    starts them), each on its own asyncpg connection, with one entrypoint that counts the jobs
    it ran (and calls `on_job`)."""

    def __init__(self, dsn: str, count: int, handled: list[int], on_job: Callable[[], object]) -> None:
        self.dsn, self.count, self.handled, self.on_job = dsn, count, handled, on_job
        self.connections: list[asyncpg.Connection] = []

    async def __aenter__(self) -> list[PgQueuer]:
        managers = []
        for _ in range(self.count):
            connection = await asyncpg.connect(self.dsn)
            self.connections.append(connection)
            qm = PgQueuer.from_asyncpg_connection(connection)

            @qm.entrypoint(JOB_TYPE)
            async def run(job: PgqJob) -> None:
                self.handled[0] += 1
                self.on_job()

            managers.append(qm)
        return managers

    async def __aexit__(self, *_: object) -> None:
        for connection in self.connections:
            await connection.close()


class QueriesConnection:
    """`Queries` over one asyncpg connection, closed afterwards."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def __aenter__(self) -> Queries:
        self.connection = await asyncpg.connect(self.dsn)
        return Queries(AsyncpgDriver(self.connection))

    async def __aexit__(self, *_: object) -> None:
        await self.connection.close()


async def sample_wakeups(enqueue: Callable[[int], Awaitable[object]], arrivals: "asyncio.Queue[float]", samples: int) -> list[float]:
    """With a worker idle until a job arrives (it puts the time it had one in `arrivals`),
    enqueues one job at a time; per job, the seconds from sending the enqueue until the worker
    had it. A first job, not counted, makes sure the worker is up and waiting."""
    latencies = []
    for i in range(-1, samples):
        sent = time.perf_counter()
        await enqueue(i)
        latency = await asyncio.wait_for(arrivals.get(), 30) - sent
        if i >= 0:
            latencies.append(latency)
        await asyncio.sleep(WAKE_GAP_S)
    return latencies


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Tables:
    """Empties both queues' tables before every job_svc or pgqueuer run, so each starts from the
    same database."""

    dsn: str
    job_svc = "jobs, job_dependencies, job_holds, breaker_outbox"
    pgqueuer = "pgqueuer, pgqueuer_log, pgqueuer_statistics"

    async def truncate(self) -> None:
        connection = await asyncpg.connect(self.dsn)
        try:
            # CASCADE: whatever else refers to the jobs goes too.
            await connection.execute(f"TRUNCATE {self.job_svc}, {self.pgqueuer} CASCADE")
        finally:
            await connection.close()


@dataclass
class Results:
    """Per path and side, one figure per round (none where a side lacks the path)."""

    rates: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    wakeups: dict[str, list[list[float]]] = field(default_factory=dict)
    unavailable: dict[tuple[str, str], str] = field(default_factory=dict)  # (path, side): why

    def add_rate(self, path: str, side: str, n: int, elapsed_s: float) -> None:
        self.rates.setdefault(path, {}).setdefault(side, []).append(n / elapsed_s)


PATHS = [
    "enqueue, 1 job per call, 16 callers",
    "enqueue in batches",
    "drain, 4 workers, CompleteJob per job",
    "drain, 4 workers, FinishJobs per claim",
    "end to end, 4 workers",
]
WAKE_UP = "wake-up"
SIDES = [JOB_SVC, BARE, PGQUEUER]  # the report's columns
RATIOS = [(JOB_SVC, PGQUEUER), (JOB_SVC, BARE), (BARE, PGQUEUER)]


async def one_round(servers: Sequence[JobV1Side], pgq: PgqSide, results: Results, n: int, wakeups: int, first: int) -> None:
    """Every path on every side, each run on an emptied queue; the sides take turns in their
    order starting at `first`."""
    sides: list[JobV1Side | PgqSide] = [*servers, pgq]
    order = sides[first:] + sides[:first]

    async def each(path: str, server_run: Callable[[JobV1Side], Awaitable[float]], pgq_run: Callable[[], Awaitable[float]], filled: bool = False) -> None:
        for side in order:
            if (path, side.name) in results.unavailable:
                continue
            await side.empty()
            if filled:
                await side.fill(n)
            try:
                results.add_rate(path, side.name, n, await (pgq_run() if isinstance(side, PgqSide) else server_run(side)))
            except NotAvailable as missing:
                results.unavailable[(path, side.name)] = str(missing)

    await each(PATHS[0], lambda side: side.enqueue_one(n), lambda: pgq.enqueue_one(n))
    await each(PATHS[1], lambda side: side.enqueue_batch(n), lambda: pgq.enqueue_batch(n))
    await each(PATHS[2], lambda side: side.drain(n, batched=False), lambda: pgq.drain(n), filled=True)
    await each(PATHS[3], lambda side: side.drain(n, batched=True), lambda: pgq.drain(n), filled=True)
    await each(PATHS[4], lambda side: side.end_to_end(n), lambda: pgq.end_to_end(n))
    for side in order:
        await side.empty()
        try:
            results.wakeups.setdefault(side.name, []).append(await side.wakeups(wakeups))
        except NotAvailable as missing:
            results.unavailable[(WAKE_UP, side.name)] = str(missing)


def median_spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}..{max(values):.2f})"


def figures_and_ratios(results: Results, path: str, by_side: dict[str, list[float]]) -> list[object]:
    """One row's cells after its name: each side's median (or why it has none), then each ratio
    of RATIOS over the rounds."""
    figures: list[object] = [
        statistics.median(by_side[side]) if by_side.get(side) else results.unavailable.get((path, side), "-") for side in SIDES
    ]
    ratios = [
        median_spread([a / b for a, b in zip(by_side[over], by_side[under])]) if by_side.get(over) and by_side.get(under) else "-"
        for over, under in RATIOS
    ]
    return [*figures, *ratios]


def report(results: Results, n: int, rounds: int, wakeups: int) -> None:
    print(f"\n{n:,} jobs per path, {rounds} rounds; jobs/s are medians; a/b = median (min..max) over the rounds of each round's a/b")
    print(f"(bare = {BARE}: bench.bare_job_server, job.v1 with no storage, the most a Python grpc.aio server reaches)\n")
    ratio_headers = [f"{over}/{under}".replace(BARE, "bare") for over, under in RATIOS]
    rows = [[path, *figures_and_ratios(results, path, results.rates.get(path, {}))] for path in PATHS]
    print_table(["path", *(f"{side} jobs/s" for side in SIDES), *ratio_headers], rows)

    print(f"\nwake-up of an idle worker, {wakeups} jobs one at a time per round; ms from sending the enqueue until the worker has the job")
    print("(medians over rounds of each round's p50 / p99; ratios as above, lower is faster)\n")
    per_round = {side: [p50_p99_ms(samples) for samples in rounds_] for side, rounds_ in results.wakeups.items()}
    rows = []
    for i, name in enumerate(("p50", "p99")):
        by_side = {side: [cut[i] for cut in cuts] for side, cuts in per_round.items()}
        rows.append([name, *figures_and_ratios(results, WAKE_UP, by_side)])
    print_table(["wake-up", *(f"{side} ms" for side in SIDES), *ratio_headers], rows)


async def main(n: int, rounds: int, wakeups: int) -> None:
    async with fresh_postgres_database() as dsn:
        pgq = PgqSide(dsn)
        with tempfile.TemporaryDirectory(prefix="bench-job-queue-") as log_dir:
            servers: list[JobV1Side] = [JobSvcSide.on(dsn, Path(log_dir)), BareSide.on(Path(log_dir))]
            try:
                for server in servers:
                    await asyncio.to_thread(server.start)  # job_svc applies its migrations
                await pgq.install()
                for server in servers:
                    await server.probe()
                results = Results()
                for round_ in range(rounds):
                    started = time.perf_counter()
                    await one_round(servers, pgq, results, n, wakeups, first=round_ % (len(servers) + 1))
                    print(f"round {round_ + 1}/{rounds}: {time.perf_counter() - started:.0f} s", flush=True)
            finally:
                for server in servers:
                    server.stop()
    report(results, n, rounds, wakeups)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.job_queue", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per path (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--wakeups", type=int, default=100, help="wake-up samples per round and side (default 100)")
    return parser.parse_args()


if __name__ == "__main__":
    args = parse_args()
    asyncio.run(main(args.jobs, args.rounds, args.wakeups))
