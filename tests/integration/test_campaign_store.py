"""The campaign database itself: the live enum catalogue, the migrations, and optimistic
concurrency between real writers."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import prometheus_client
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from campaign.v1 import campaign_pb2 as pb
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from campaign_svc import domain, metrics
from campaign_svc.domain import CampaignStatus, HoldKind
from campaign_svc.settings import MIGRATIONS_DIR
from campaign_svc.store import CampaignStore
from campaign_svc.tables import metadata
from services.db import alembic_config, create_engine, upgrade_schema
from services.watch import BreakerState
from tests.support.campaign import running_app
from tests.support.polling import eventually

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    await upgrade_schema(database_url, MIGRATIONS_DIR)
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


async def test_the_database_enums_are_exactly_the_python_values(postgres_url: str) -> None:
    await upgrade_schema(postgres_url, MIGRATIONS_DIR)
    engine = create_engine(postgres_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(
                text(
                    "SELECT t.typname, e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid"
                    " ORDER BY t.typname, e.enumsortorder"
                )
            )
            catalogue: dict[str, list[str]] = {}
            for name, label in rows:
                catalogue.setdefault(name, []).append(label)
    finally:
        await engine.dispose()
    assert catalogue["campaign_status"] == [s.value for s in CampaignStatus]
    assert catalogue["hold_kind"] == [k.value for k in HoldKind]
    assert catalogue["breaker_state"] == [s.value for s in BreakerState]


async def test_the_migrations_build_exactly_the_schema_the_code_uses(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        differences = await connection.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync, opts={"compare_type": True}), metadata)
        )
    assert differences == []


async def test_of_two_writers_of_the_same_version_the_second_is_refused(postgres_url: str) -> None:
    await upgrade_schema(postgres_url, MIGRATIONS_DIR)
    engine = create_engine(postgres_url)
    store = CampaignStore()
    try:
        campaign = domain.start(domain.new_campaign(str(uuid.uuid4()), "n", "", ("openai",), None, NOW), [], NOW)
        async with engine.begin() as connection:
            await store.insert(connection, campaign)
        async with engine.connect() as writer_a, engine.connect() as writer_b:
            seen_by_a = await store.get(writer_a, campaign.id)
            seen_by_b = await store.get(writer_b, campaign.id)
            assert seen_by_a == seen_by_b and seen_by_a.version == 2
            assert await store.update(writer_a, domain.pause(seen_by_a, "a", NOW), seen_by_a.version)
            # B's conditional update waits for A's row lock, then finds the version moved on.
            refused = asyncio.create_task(store.update(writer_b, domain.fail(seen_by_b, "b", NOW), seen_by_b.version))
            await asyncio.sleep(0.05)
            assert not refused.done()
            await writer_a.commit()
            assert await refused is False
            await writer_b.commit()
        async with engine.connect() as connection:
            stored = await store.get(connection, campaign.id)
        assert (stored.status, stored.version, stored.manual_hold.reason) == (CampaignStatus.PAUSED, 3, "a")
    finally:
        await engine.dispose()


async def test_concurrent_changes_of_one_campaign_are_retried_and_counted_once(database_url: str) -> None:
    async with running_app(database_url) as h:
        campaign = await h.running("openai", "perplexity")
        pauses = [h.stub.PauseCampaign(pb.PauseCampaignRequest(id=campaign.id, reason=f"r{i}")) for i in range(10)]
        results = await asyncio.gather(*pauses, h.set_breaker("perplexity", BreakerState.OPEN))
        final = await h.get(campaign.id)
        # One pause changed it (version +1), the opening added its hold (+1); the other nine
        # pauses, retried after losing the race, found it paused by hand and changed nothing.
        assert final.version == campaign.version + 2
        assert sorted(x.kind for x in final.holds) == [pb.HOLD_KIND_BREAKER, pb.HOLD_KIND_MANUAL]
        assert all(r.campaign.status == pb.CAMPAIGN_STATUS_PAUSED and r.campaign.holds for r in results[:10]), results[:10]
        await eventually(lambda: _outbox_empty(h))
        assert h.jobs.calls == [("PauseJobs", campaign.id)]


async def _outbox_empty(h) -> bool:  # type: ignore[no-untyped-def]
    async with h.app.engine.connect() as connection:
        return await h.app.store.pending_job_commands(connection) == 0


async def test_the_metrics_count_campaigns_per_status_and_paused_campaigns_per_hold(sqlite_url: str) -> None:
    async with running_app(sqlite_url) as h:
        await h.running("perplexity")
        by_hand = await h.running("openai")
        await h.create("openai")
        await h.stub.PauseCampaign(pb.PauseCampaignRequest(id=by_hand.id, reason="hand"))
        await h.set_breaker("perplexity", BreakerState.OPEN)
        await metrics.refresh(h.app.engine, h.app.store)
        sample = prometheus_client.REGISTRY.get_sample_value
        counts = {s.value: sample("campaign_campaigns", {"status": s.value}) for s in CampaignStatus}
        assert counts == {"created": 1, "running": 0, "paused": 2, "completed": 0, "failed": 0}
        assert sample("campaign_held", {"hold": "breaker"}) == 1
        assert sample("campaign_held", {"hold": "manual"}) == 1


async def test_the_set_aside_index_migration_keeps_the_outbox_both_ways(database_url: str) -> None:
    config = alembic_config(database_url, MIGRATIONS_DIR)
    await asyncio.to_thread(command.upgrade, config, "0002")
    engine = create_engine(database_url)
    row = {"c": uuid.uuid4(), "t": datetime.now(UTC)}
    insert_row = "INSERT INTO job_commands (campaign_id, action, reason, created_at, attempts) VALUES (:c, 'pause', 'r', :t, 0)"
    try:
        async with engine.begin() as connection:
            await connection.execute(text(insert_row).bindparams(c=row["c"], t=row["t"]))
        await asyncio.to_thread(command.upgrade, config, "0003")
        async with engine.connect() as connection:
            assert await CampaignStore().pending_job_commands(connection) == 1
        await asyncio.to_thread(command.downgrade, config, "0002")
        async with engine.connect() as connection:
            assert await connection.scalar(text("SELECT count(*) FROM job_commands")) == 1
    finally:
        await engine.dispose()
