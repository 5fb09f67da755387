"""breaker_svc: RecordOutcome calls/s and latency over a real gRPC channel to the app started in
this process (port 0), on the memory store and on Redis; RecordOutcomes batches; and the time
from the outcome that trips a breaker to a WatchTransitions subscriber receiving OPEN.

    .venv/bin/python -m bench.breaker_throughput     # about 25 s; Redis at 127.0.0.1:6379

Client, server and subscriber share this process's event loop, so every figure is a whole round
trip (client + server Python on one core), not the server alone.
"""

import asyncio
import statistics
import time

import grpc
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc

from bench.common import REDIS_URL, SERVER, p50_p99_ms, print_table, quiet_logs, redis_prefix
from breaker_svc.app import BreakerApp
from breaker_svc.domain import BreakerConfig
from breaker_svc.settings import BreakerSettings
from services.watch import BreakerState, Transition, event_from_proto

WARM_UP = 200
SEQUENTIAL = 1_000
CALLERS = 50
CONCURRENT = 2_500  # CALLERS callers, CONCURRENT / CALLERS calls each
BATCH = 5_000
TRIPS = 20
CONFIG = BreakerConfig()  # the defaults: with 10 calls recorded, 50 % failed trips the breaker
# Throughput runs record 1 failure in 10: the breakers stay CLOSED, but every outcome changes the
# window, so every call writes (a window full of successes takes another success as a no-op).
FAILURE_EVERY = 10
RESULT = {True: pb.CALL_RESULT_SUCCESS, False: pb.CALL_RESULT_FAILURE}


def outcome(dependency: str, success: bool = True) -> pb.RecordOutcomeRequest:
    return pb.RecordOutcomeRequest(dependency=dependency, result=RESULT[success])


async def calls(stub: breaker_pb2_grpc.BreakerServiceStub, dependency: str, count: int) -> list[float]:
    """`count` RecordOutcome calls one after another; the latency of each."""
    latencies = []
    for i in range(count):
        request = outcome(dependency, success=i % FAILURE_EVERY != 0)
        started = time.perf_counter()
        await stub.RecordOutcome(request)
        latencies.append(time.perf_counter() - started)
    return latencies


async def callers(stub: breaker_pb2_grpc.BreakerServiceStub, dependencies: int) -> tuple[list[float], float]:
    """CALLERS concurrent callers spread over `dependencies` breakers; latencies and wall time."""
    started = time.perf_counter()
    runs = await asyncio.gather(*(calls(stub, f"conc-{i % dependencies}", CONCURRENT // CALLERS) for i in range(CALLERS)))
    return [latency for run in runs for latency in run], time.perf_counter() - started


async def batch(stub: breaker_pb2_grpc.BreakerServiceStub, dependencies: int) -> float:
    """One RecordOutcomes stream of BATCH outcomes cycling over `dependencies` breakers."""
    requests = [
        pb.RecordOutcomesRequest(dependency=f"batch-{i % dependencies}", result=RESULT[i % FAILURE_EVERY != 0])
        for i in range(BATCH)
    ]
    started = time.perf_counter()
    response = await stub.RecordOutcomes(iter(requests))
    assert response.recorded_count == BATCH
    return time.perf_counter() - started


async def trips(stub: breaker_pb2_grpc.BreakerServiceStub) -> tuple[list[float], list[float]]:
    """Trips TRIPS fresh breakers; for each, the tripping RecordOutcome's latency and the time
    from sending it to a subscriber receiving the OPEN transition."""
    stream = stub.WatchTransitions(pb.WatchTransitionsRequest())
    subscribed = asyncio.Event()
    opened: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    async def subscriber() -> None:
        async for message in stream:
            event = event_from_proto(message)
            subscribed.set()  # the first message is the snapshot
            if isinstance(event, Transition) and event.to_state is BreakerState.OPEN:
                opened.put_nowait((event.dependency, time.perf_counter()))

    reading = asyncio.create_task(subscriber())
    await asyncio.wait_for(subscribed.wait(), timeout=5)
    rpc, delivered = [], []
    try:
        for i in range(TRIPS):
            dependency = f"trip-{i}"
            for _ in range(CONFIG.minimum_calls - 1):
                await stub.RecordOutcome(outcome(dependency, success=False))
            started = time.perf_counter()
            response = await stub.RecordOutcome(outcome(dependency, success=False))
            rpc.append(time.perf_counter() - started)
            assert response.transition.to_state == pb.BREAKER_STATE_OPEN
            seen, at = await asyncio.wait_for(opened.get(), timeout=5)
            assert seen == dependency
            delivered.append(at - started)
    finally:
        stream.cancel()
        reading.cancel()
    return rpc, delivered


async def bench_store(kind: str) -> tuple[list[list[object]], list[object]]:
    """Every measurement on one store: the throughput rows and the trip row of the tables."""
    async with redis_prefix() as prefix:  # unused by the memory store
        settings = BreakerSettings(
            store=kind, redis_url=REDIS_URL, redis_prefix=prefix, event_retention=10_000, heartbeat_s=5.0,
            watch_buffer=1000, timer_interval_s=0.2, default_config=CONFIG,
        )
        app = BreakerApp(settings, SERVER)
        port = await app.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = breaker_pb2_grpc.BreakerServiceStub(channel)
                await calls(stub, "warm-up", WARM_UP)
                started = time.perf_counter()
                latencies = await calls(stub, "seq", SEQUENTIAL)
                rows = [["RecordOutcome, sequential", SEQUENTIAL, time.perf_counter() - started, *p50_p99_ms(latencies)]]
                for what, dependencies in ((f"{CALLERS} callers, 1 breaker", 1), (f"{CALLERS} callers, {CALLERS} breakers", CALLERS)):
                    latencies, wall = await callers(stub, dependencies)
                    rows.append([f"RecordOutcome, {what}", CONCURRENT, wall, *p50_p99_ms(latencies)])
                for what, dependencies in (("1 breaker", 1), ("5 breakers interleaved", 5)):
                    rows.append([f"RecordOutcomes batch, {what}", BATCH, await batch(stub, dependencies), "-", "-"])
                rpc, delivered = await trips(stub)
        finally:
            await app.stop()
    table = [[kind, what, n, f"{wall:.2f}", n / wall, p50, p99] for what, n, wall, p50, p99 in rows]
    trip_row = [kind, TRIPS, statistics.median(rpc) * 1000, statistics.median(delivered) * 1000, max(delivered) * 1000]
    return table, trip_row


async def main() -> None:
    quiet_logs()
    results = [await bench_store(kind) for kind in ("memory", "redis")]
    print_table(["store", "what", "outcomes", "wall s", "outcomes/s", "p50 ms", "p99 ms"], [r for table, _ in results for r in table])
    print()
    print_table(
        ["store", "trips", "tripping call median ms", "trip -> OPEN on watch median ms", "max ms"],
        [trip_row for _, trip_row in results],
    )


if __name__ == "__main__":
    asyncio.run(main())
