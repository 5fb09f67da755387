"""campaign_svc on a fresh PostgreSQL database, following a real breaker_svc (memory store), both
started in this process: 500 StartCampaign calls at once, and part-way through one of the
campaigns' dependencies is forced open. Each start must either commit before the opening is
applied (and then be paused by it) or be refused; afterwards no campaign may be running.

    .venv/bin/python -m bench.campaign_start_race     # about 10 s; PostgreSQL at 127.0.0.1:5432
"""

import asyncio
import time

import asyncpg
import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from sqlalchemy import func, select

from bench.common import REDIS_URL, SERVER, p50_p99_ms, print_table, quiet_logs
from tests.support.databases import fresh_postgres_database
from breaker_svc.app import BreakerApp
from breaker_svc.domain import BreakerConfig
from breaker_svc.settings import BreakerSettings
from campaign_svc.app import CampaignApp
from campaign_svc.domain import HoldKind
from campaign_svc.settings import CampaignSettings
from campaign_svc.tables import campaign_holds, campaigns

CAMPAIGNS = 500
DEPENDENCIES = ["apollo", "openai"]
FLIPPED = "openai"
FLIP_AFTER = 150  # starts answered before the breaker is forced open
APPLIED = "SELECT applied_revision FROM breaker_watch_cursor"


async def start_all(stub: campaign_pb2_grpc.CampaignServiceStub, ids: list[str], flip: asyncio.Event) -> tuple[list[str], list[float]]:
    """Every start at once; each one's status code and latency. `flip` is set after FLIP_AFTER."""
    codes: list[str] = []

    async def start(campaign_id: str) -> float:
        started = time.perf_counter()
        try:
            await stub.StartCampaign(campaign_pb2.StartCampaignRequest(id=campaign_id))
            codes.append("OK")
        except grpc.aio.AioRpcError as error:
            codes.append(error.code().name)
        if len(codes) == FLIP_AFTER:
            flip.set()
        return time.perf_counter() - started

    return codes, await asyncio.gather(*(start(i) for i in ids))


async def force_open(breaker: breaker_pb2_grpc.BreakerServiceStub, database_url: str, flip: asyncio.Event) -> float:
    """Forces FLIPPED open once `flip` is set; the time until campaign_svc has applied it, read
    from its database on a connection of our own (not queued behind the starts in its pool)."""
    connection = await asyncpg.connect(database_url)
    try:
        before = await connection.fetchval(APPLIED)
        await flip.wait()
        sent = time.perf_counter()
        forcing = asyncio.ensure_future(breaker.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=FLIPPED, reason="bench")))
        while await connection.fetchval(APPLIED) == before:
            await asyncio.sleep(0.005)
        applied = time.perf_counter() - sent
        await forcing
        return applied
    finally:
        await connection.close()


async def race(breaker_port: int, url: str) -> tuple[list[str], list[float], float, float, dict[str, int], int]:
    """Runs campaign_svc on `url` against breaker_svc; the starts' answers and latencies, the
    wall time, the time to apply the opening, campaigns per status and breaker holds after."""
    app = CampaignApp(CampaignSettings(
        server=SERVER, database_url=url, breaker_target=f"127.0.0.1:{breaker_port}", job_target="127.0.0.1:9",
        breaker_stale_after_s=30.0, job_call_timeout_s=2.0, outbox_backoff_max_s=1.0, metrics_refresh_s=5.0,
    ))
    port = await app.start()
    try:
        while await app.mirror.applied_revision() is None:  # not heard breaker_svc yet
            await asyncio.sleep(0.05)
        async with (
            grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel,
            grpc.aio.insecure_channel(f"127.0.0.1:{breaker_port}") as breaker_channel,
        ):
            stub = campaign_pb2_grpc.CampaignServiceStub(channel)
            created = await asyncio.gather(*(
                stub.CreateCampaign(campaign_pb2.CreateCampaignRequest(name=f"c{i}", dependencies=DEPENDENCIES)) for i in range(CAMPAIGNS)
            ))
            flip = asyncio.Event()
            started = time.perf_counter()
            (codes, latencies), applied_s = await asyncio.gather(
                start_all(stub, [c.campaign.id for c in created], flip),
                force_open(breaker_pb2_grpc.BreakerServiceStub(breaker_channel), url, flip),
            )
            wall = time.perf_counter() - started
        async with app.engine.connect() as connection:
            statuses = (await connection.execute(select(campaigns.c.status, func.count()).group_by(campaigns.c.status))).all()
            holds = await connection.scalar(
                select(func.count()).where(campaign_holds.c.kind == HoldKind.BREAKER, campaign_holds.c.dependency == FLIPPED)
            )
    finally:
        await app.stop()
    return codes, latencies, wall, applied_s, {status.value: n for status, n in statuses}, holds


async def main() -> None:
    quiet_logs()
    breaker = BreakerApp(
        BreakerSettings(
            store="memory", redis_url=REDIS_URL, redis_prefix="", event_retention=10_000, heartbeat_s=1.0,
            watch_buffer=1000, timer_interval_s=0.2, default_config=BreakerConfig(),
        ),
        SERVER,
    )
    breaker_port = await breaker.start()
    try:
        async with fresh_postgres_database() as url:
            codes, latencies, wall, applied_s, statuses, holds = await race(breaker_port, url)
    finally:
        await breaker.stop()

    answers = {code: codes.count(code) for code in sorted(set(codes))}
    started, refused = answers.get("OK", 0), answers.get("FAILED_PRECONDITION", 0)
    # Every start committed before the opening was applied is paused by it; every later one refused.
    invariant = statuses.get("running", 0) == 0 and statuses.get("paused", 0) == holds == started and statuses.get("created", 0) == refused
    print_table(
        ["starts", "wall s", "starts/s", "p50 ms", "p99 ms", "answers", "ForceOpen -> applied ms", "campaigns after", "invariant"],
        [[CAMPAIGNS, f"{wall:.2f}", CAMPAIGNS / wall, *p50_p99_ms(latencies), " ".join(f"{c} {n}" for c, n in answers.items()),
          applied_s * 1000, " ".join(f"{s} {n}" for s, n in sorted(statuses.items())), "holds" if invariant else "VIOLATED"]],
    )
    print(f"\ninvariant: none running; paused = breaker holds on {FLIPPED} = OK answers; created = FAILED_PRECONDITION answers")
    assert invariant, (answers, statuses, holds)


if __name__ == "__main__":
    asyncio.run(main())
