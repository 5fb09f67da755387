"""The breaker guard (services.client.BreakerClient) against pybreaker, in one run.

    .venv/bin/python -m bench.guard [--rounds 7] [--processes 50] [--trips 10] [--poll-ms 5]
                                    [--seconds 5] [--parts cost,trip,throughput]

breaker_svc runs as its own process (memory store) on loopback. Three measurements:

1. Cost per call while closed, in interleaved rounds: our guard (`async with`, and the
   SyncBreakerClient's `with` from a thread), pybreaker in memory (`with breaker.calling()`),
   pybreaker with its Redis storage (CircuitRedisStorage, on the shared Redis under a throw-away
   key prefix). Wall time per call of the calls alone, and CPU time per call (this process,
   every thread) until our outcomes are acknowledged: the batching, serialising, sending and
   reading acknowledgements that a closed call causes later are in it; breaker_svc's own work
   is not (another process). The guarded call does nothing, so what is measured is the guard.
   Printed: us per call (median over rounds and min..max), and ratios pybreaker/ours (wall)
   per round (median and min..max).
2. Time from a trip until guards in N client processes refuse calls: each process polls its
   guard every `--poll-ms` (a probe whose exception the guard ignores, so polling records no
   outcomes); the bench trips the breaker with one failing RecordOutcome
   (consecutive_failure_threshold 1), timing from just before it is sent, waits until every
   process has refused a call, resets it and waits until every process lets calls through
   again. p50/p99/max over processes x trips.
3. Outcomes per second that one process's guards get counted by breaker_svc (memory store):
   guarded calls in a tight loop for `--seconds`, counting what breaker_svc acknowledged.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pybreaker
import redis
from breaker.v1 import breaker_pb2 as pb

from bench.common import REDIS_URL, p50_p99_ms, print_table, redis_prefix
from services.client import BreakerClient, BreakerServiceClient, SyncBreakerClient
from tests.support.processes import REPO, ServiceProcess, free_port

DEPENDENCY = "openai"


def start_breaker_svc(log_dir: Path) -> ServiceProcess:
    port = free_port()
    env = {"BREAKER_PORT": str(port), "BREAKER_STORE": "memory", "LOG_LEVEL": "warning", "BREAKER_HEARTBEAT_S": "1"}
    return ServiceProcess("breaker_svc", port, env, log_dir).start()


# --- 1. cost per closed call ---------------------------------------------------------------


class Clock:
    """Wall seconds per call of the calls themselves, and CPU seconds (this process, every
    thread) per call until their outcomes are acknowledged (`done`)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def calls_made(self) -> None:
        self.wall = time.perf_counter() - self.wall

    def per_call(self, calls: int) -> tuple[float, float]:
        return self.wall / calls, (time.process_time() - self.cpu) / calls


async def ours_async(breakers: BreakerClient, calls: int) -> tuple[float, float]:
    """Seconds per call; yields to the loop every 1,000 calls, as a real caller's awaits would."""
    clock = Clock()
    for n in range(calls):
        async with breakers.guard(DEPENDENCY):
            pass
        if n % 1000 == 999:
            await asyncio.sleep(0)
    clock.calls_made()
    while breakers.pending_outcomes:  # batching, sending and the acknowledgements cost CPU here
        await asyncio.sleep(0.001)
    return clock.per_call(calls)


def ours_sync(breakers: SyncBreakerClient, calls: int) -> tuple[float, float]:
    clock = Clock()
    for _ in range(calls):
        with breakers.guard(DEPENDENCY):
            pass
    clock.calls_made()
    while breakers.client.pending_outcomes:
        time.sleep(0.001)
    return clock.per_call(calls)


def pybreaker_calls(breaker: pybreaker.CircuitBreaker, calls: int) -> tuple[float, float]:
    clock = Clock()
    for _ in range(calls):
        with breaker.calling():
            pass
    clock.calls_made()
    return clock.per_call(calls)


async def cost_per_call(target: str, rounds: int, calls: int, redis_calls: int) -> None:
    async with redis_prefix() as prefix, BreakerClient(target, tls=None) as breakers:
        sync_breakers = await asyncio.to_thread(SyncBreakerClient, target, tls=None)
        redis_client = redis.Redis.from_url(REDIS_URL)
        in_memory = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
        storage = pybreaker.CircuitRedisStorage(pybreaker.STATE_CLOSED, redis_client, namespace=f"{prefix}pybreaker")
        with_redis = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30, state_storage=storage)
        samples: dict[str, list[tuple[float, float]]] = {k: [] for k in ("ours", "ours_sync", "pybreaker", "pybreaker_redis")}
        try:
            await ours_async(breakers, calls // 10)  # warm-up
            for _ in range(rounds):
                samples["ours"].append(await ours_async(breakers, calls))
                samples["ours_sync"].append(await asyncio.to_thread(ours_sync, sync_breakers, calls))
                samples["pybreaker"].append(pybreaker_calls(in_memory, calls))
                samples["pybreaker_redis"].append(await asyncio.to_thread(pybreaker_calls, with_redis, redis_calls))
        finally:
            await asyncio.to_thread(sync_breakers.close)
            redis_client.close()
        print(f"\n1. cost per closed call ({rounds} interleaved rounds; {calls:,} calls, {redis_calls:,} with Redis storage)")
        rows = []
        for name, values in samples.items():
            us = [wall * 1e6 for wall, _ in values]
            cpu_us = [cpu * 1e6 for _, cpu in values]
            ratio = [p[0] / o[0] for p, o in zip(values, samples["ours"], strict=True)]
            rows.append((
                name, statistics.median(us), f"{min(us):.2f}..{max(us):.2f}", statistics.median(cpu_us),
                statistics.median(ratio), f"{min(ratio):.2f}..{max(ratio):.2f}",
            ))
        print_table(["guard", "us/call median", "min..max", "CPU us/call", "x ours (async)", "min..max"], rows)
        if breakers.dropped_outcomes:
            print(f"   (ours dropped {breakers.dropped_outcomes:,} outcomes)")


# --- 2. trip propagation -----------------------------------------------------------------

CHILD = """
import asyncio, sys, time
from services.client import BreakerClient, BreakerOpen, OutcomePolicy

class Probe(Exception):
    pass

async def main(target):
    # The probes raise an ignored exception: they are not recorded, so 50 processes polling add
    # no outcome traffic to breaker_svc.
    async with BreakerClient(target, tls=None, policy=OutcomePolicy(ignore=(Probe,))) as breakers:
        print("ready", flush=True)
        refusing = False
        while True:
            try:
                async with breakers.guard("tripwire"):
                    raise Probe()
            except Probe:
                if refusing:
                    print("closed", flush=True)
                refusing = False
            except BreakerOpen:
                if not refusing:
                    print("refused", time.time(), flush=True)
                refusing = True
            await asyncio.sleep(POLL_S)

POLL_S = float(sys.argv[2])
asyncio.run(main(sys.argv[1]))
"""


class Child:
    """One client process and the lines it prints, read by a thread into a queue."""

    def __init__(self, target: str, poll_s: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, target, str(poll_s)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read, args=(loop,), daemon=True).start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            loop.call_soon_threadsafe(self.lines.put_nowait, line.strip())

    async def expect(self, word: str) -> str:
        while True:
            line = await asyncio.wait_for(self.lines.get(), 60)
            if line.startswith(word):
                return line

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


async def trip_propagation(target: str, processes: int, trips: int, poll_s: float) -> None:
    """Each trip stays open until every process has refused a call, then is reset and the next
    waits until every process lets calls through again: no process can miss a trip."""
    children = [Child(target, poll_s) for _ in range(processes)]
    delays = []
    try:
        async with BreakerServiceClient(target, tls=None) as admin:
            # One failure trips it, however many successes the polling guards record meanwhile.
            await admin.configure("tripwire", pb.BreakerConfig(consecutive_failure_threshold=1), ["consecutive_failure_threshold"])
            await asyncio.gather(*(child.expect("ready") for child in children))
            for _ in range(trips):
                tripped_at = time.time()
                await admin.record_outcome("tripwire", False)
                refusals = await asyncio.gather(*(child.expect("refused") for child in children))
                delays += [float(line.split()[1]) - tripped_at for line in refusals]
                await admin.reset("tripwire")
                await asyncio.gather(*(child.expect("closed") for child in children))
    finally:
        for child in children:
            child.stop()
    p50, p99 = p50_p99_ms(delays)
    print(f"\n2. trip -> refused in {processes} client processes ({trips} trips, {len(delays)} samples, guards polled every {poll_s * 1000:g} ms)")
    print_table(["", "p50 ms", "p99 ms", "max ms"], [("trip to refusal", p50, p99, max(delays) * 1000)])


# --- 3. outcomes per second --------------------------------------------------------------


async def outcome_throughput(target: str, seconds: float) -> None:
    async with BreakerClient(target, tls=None) as breakers:
        async def caller() -> None:
            for n in range(10**12):
                async with breakers.guard("throughput"):
                    pass
                if n % 200 == 199:
                    await asyncio.sleep(0)

        callers = [asyncio.create_task(caller()) for _ in range(4)]
        await asyncio.sleep(0.5)  # warm up
        start_recorded, start_dropped, started = breakers.recorded_outcomes, breakers.dropped_outcomes, time.perf_counter()
        await asyncio.sleep(seconds)
        recorded, dropped = breakers.recorded_outcomes - start_recorded, breakers.dropped_outcomes - start_dropped
        elapsed = time.perf_counter() - started
        for task in callers:
            task.cancel()
        await asyncio.gather(*callers, return_exceptions=True)
    print(f"\n3. outcomes one process's guards get counted by breaker_svc (memory store), {seconds:g} s")
    print_table(["", "counted/s", "dropped/s (bound reached)"], [("guards in a tight loop", recorded / elapsed, dropped / elapsed)])


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as log_dir:
        breaker_svc = start_breaker_svc(Path(log_dir))
        try:
            print(f"breaker_svc (memory store) at {breaker_svc.address}; {os.cpu_count()} CPUs")
            if "cost" in args.parts:
                await cost_per_call(breaker_svc.address, args.rounds, args.calls, args.redis_calls)
            if "trip" in args.parts:
                await trip_propagation(breaker_svc.address, args.processes, args.trips, args.poll_ms / 1000)
            if "throughput" in args.parts:
                await outcome_throughput(breaker_svc.address, args.seconds)
        finally:
            breaker_svc.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--redis-calls", type=int, default=300)
    parser.add_argument("--processes", type=int, default=50)
    parser.add_argument("--trips", type=int, default=10)
    parser.add_argument("--poll-ms", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--parts", default="cost,trip,throughput", help="which measurements, comma-separated")
    asyncio.run(main(parser.parse_args()))
