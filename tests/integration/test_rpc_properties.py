"""Property: whatever a caller sends to any RPC of the three services (arbitrary messages built
from the service descriptors, so RPCs added later are swept too, and bytes that do not decode),
the answer is never UNKNOWN or INTERNAL, the server keeps answering, and every read RPC still
works afterwards (nothing unreadable was stored).

Through real channels to the three services wired together in this process: job_svc and
campaign_svc on SQLite with breaker_svc in memory, then a smaller pass on PostgreSQL and Redis;
and a few cases through grpcurl, as operators send them.
"""

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from breaker.v1 import breaker_pb2 as bpb
from breaker.v1 import breaker_pb2_grpc
from campaign.v1 import campaign_pb2 as cpb
from campaign.v1 import campaign_pb2_grpc
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from job.v1 import job_pb2 as jpb
from job.v1 import job_pb2_grpc
from prometheus_client import REGISTRY

from breaker_svc.domain.config import PUBLIC_NAMES
from breaker_svc.store.memory import MemoryStore
from breaker_svc.store.redis_store import RedisStore
from services.grpc_metrics import rpc_type
from tests.conftest import REDIS_URL
from tests.support.databases import fresh_postgres_database, throwaway_redis_prefix
from tests.support.messages import messages, plausible_values
from tests.support.services import EVERY_METHOD, Answer, Services, call, call_raw, request_class, response_class, three_services

GRPCURL = Path(sys.executable).parent / "grpcurl"
# Bad input is the caller's fault; a hung call shows as DEADLINE_EXCEEDED.
NEVER = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL, grpc.StatusCode.DEADLINE_EXCEEDED)
METHODS = {m.full_name: m for m in EVERY_METHOD}
SEEDED_JOBS = 12
# No shrinking: each step is a real call, and the first failing request is printed as found.
SWEEP = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None, phases=[Phase.explicit, Phase.generate])


@dataclass
class Stack:
    services: Services
    plausible: dict[str, list[str]]  # field name -> values that exist, so requests reach the deeper checks
    reads: list[MethodDescriptor]  # the RPCs that answer an empty request with data


async def seeded(services: Services) -> Stack:
    """A little of everything (jobs pending and leased, campaigns, breakers, pages) to aim
    requests at: the strings of these responses, by field name, are the plausible values."""
    jobs = job_pb2_grpc.JobServiceStub(services.channels["job.v1.JobService"])
    campaigns = campaign_pb2_grpc.CampaignServiceStub(services.channels["campaign.v1.CampaignService"])
    breakers = breaker_pb2_grpc.BreakerServiceStub(services.channels["breaker.v1.BreakerService"])
    campaign = await campaigns.CreateCampaign(cpb.CreateCampaignRequest(name="c", description="d", dependencies=["openai", "apollo"]))
    responses = [campaign, await campaigns.CreateCampaign(cpb.CreateCampaignRequest(name="e", dependencies=["openai"]))]
    for _ in range(SEEDED_JOBS):
        request = jpb.CreateJobRequest(job_type="enrich", dependencies=["openai"], campaign_id=campaign.campaign.id)
        responses.append(await jobs.CreateJob(request))
    responses.append(await jobs.ClaimJobs(jpb.ClaimJobsRequest(worker_id="w", max_jobs=SEEDED_JOBS - 2)))
    responses.append(await breakers.RecordOutcome(bpb.RecordOutcomeRequest(dependency="openai", result=bpb.CALL_RESULT_SUCCESS)))
    responses.append(await breakers.ForceOpen(bpb.ForceOpenRequest(dependency="perplexity", reason="r")))
    pages = [await jobs.ListJobs(jpb.ListJobsRequest(page_size=1)), await campaigns.ListCampaigns(cpb.ListCampaignsRequest(page_size=1))]
    plausible = plausible_values(responses)
    plausible.update(worker_id=["w"], paths=list(PUBLIC_NAMES.values()), page_token=[page.next_page_token for page in pages])
    reads = [m for m in EVERY_METHOD if m.name.startswith(("List", "Get", "Watch")) and (await _read(services, m)).code == grpc.StatusCode.OK]
    return Stack(services, plausible, reads)


async def _read(services: Services, method: MethodDescriptor) -> Answer:
    """The read's first page (the last test of this module pages through to the end)."""
    return await call(services.channel(method), method, [request_class(method)()])


@pytest.fixture(scope="module")
async def on_sqlite_and_memory(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    folder = tmp_path_factory.mktemp("rpc-properties")
    async with three_services(MemoryStore(), f"sqlite:///{folder / 'job.db'}", f"sqlite:///{folder / 'campaign.db'}") as services:
        yield await seeded(services)


@pytest.fixture(scope="module")
async def on_postgres_and_redis() -> AsyncIterator[Stack]:
    async with AsyncExitStack() as stack:
        job_database = await stack.enter_async_context(fresh_postgres_database())
        campaign_database = await stack.enter_async_context(fresh_postgres_database())
        prefix = await stack.enter_async_context(throwaway_redis_prefix(REDIS_URL, "rpc-properties"))
        store = RedisStore.from_url(REDIS_URL, prefix=prefix)
        services = await stack.enter_async_context(three_services(store, job_database, campaign_database))
        yield await seeded(services)


async def answer_to(stack: Stack, method: MethodDescriptor, data: st.DataObject) -> None:
    """One drawn request (or stream of them) to `method`; then every read of its service works."""
    request = messages(method.input_type, stack.plausible)
    requests = data.draw(st.lists(request, max_size=3) if method.client_streaming else st.tuples(request))
    answered_before = _server_answers(method)
    answer = await call(stack.services.channel(method), method, requests)
    assert _server_answers(method) == answered_before, f"{method.full_name} answered UNKNOWN or INTERNAL to {list(requests)}"
    if not answer.cut_short:
        assert answer.code not in NEVER, f"{method.full_name} answered {answer.code.name} ({answer.details}) to {list(requests)}"
    for read in stack.reads:
        if read.containing_service is method.containing_service:
            after = await _read(stack.services, read)
            assert after.code == grpc.StatusCode.OK, f"{read.name} answers {after.code.name} ({after.details}) after {method.name}{list(requests)}"


@pytest.mark.parametrize("method", METHODS, ids=lambda name: name.rsplit(".", 1)[-1])
@settings(SWEEP, max_examples=30)
@given(data=st.data())
async def test_no_request_gets_unknown_or_internal_on_sqlite_and_memory(on_sqlite_and_memory: Stack, method: str, data) -> None:
    await answer_to(on_sqlite_and_memory, METHODS[method], data)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.parametrize("method", METHODS, ids=lambda name: name.rsplit(".", 1)[-1])
@settings(SWEEP, max_examples=8)
@given(data=st.data())
async def test_no_request_gets_unknown_or_internal_on_postgres_and_redis(on_postgres_and_redis: Stack, method: str, data) -> None:
    await answer_to(on_postgres_and_redis, METHODS[method], data)


def _server_answers(method: MethodDescriptor) -> list[float | None]:
    """How often the server (its interceptor's metric) answered the method with a code it never should."""
    labels = {
        "grpc_type": rpc_type(method.client_streaming, method.server_streaming),
        "grpc_service": method.containing_service.full_name,
        "grpc_method": method.name,
    }
    return [REGISTRY.get_sample_value("grpc_server_handled_total", {**labels, "grpc_code": code.name}) for code in NEVER]


def _mangled(encoded: bytes, cut: int, flip: int) -> bytes:
    """A valid encoding cut short, or with one byte changed: rarely still a valid message."""
    if not encoded:
        return b"\xff"
    if cut % 2:
        return encoded[: cut % len(encoded)]
    position = flip % len(encoded)
    return encoded[:position] + bytes([encoded[position] ^ 0xFF]) + encoded[position + 1 :]


@settings(SWEEP, max_examples=150)
@given(data=st.data(), method=st.sampled_from(EVERY_METHOD))
async def test_bytes_that_may_not_decode_never_get_unknown_or_internal(on_sqlite_and_memory: Stack, data, method: MethodDescriptor) -> None:
    valid = data.draw(messages(method.input_type, on_sqlite_and_memory.plausible)).SerializeToString()
    raw = data.draw(st.binary(max_size=100) | st.builds(_mangled, st.just(valid), st.integers(0, 999), st.integers(0, 999)))
    answer = await call_raw(on_sqlite_and_memory.services.channel(method), method, [raw])
    assert answer.code not in NEVER, f"{method.full_name} answered {answer.code.name} ({answer.details}) to {raw!r}"
    assert "Error" not in answer.details and "<class" not in answer.details, answer.details


async def test_every_read_pages_to_the_end_after_the_sweeps(on_sqlite_and_memory: Stack) -> None:
    services = on_sqlite_and_memory.services
    assert {m.name for m in on_sqlite_and_memory.reads} >= {"ListJobs", "ListCampaigns", "ListBreakers", "GetQueueStatus", "GetPauseStatus", "WatchTransitions"}
    for method in on_sqlite_and_memory.reads:
        request = request_class(method)()
        for _ in range(100):
            response = await _first_response(services, method, request)
            if not getattr(response, "next_page_token", ""):
                break
            request.page_token = response.next_page_token
        else:
            raise AssertionError(f"{method.name} pages for ever")


async def _first_response(services: Services, method: MethodDescriptor, request: Message) -> Message:
    """The response of a unary read, or the first message of a streaming one."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    channel, output = services.channel(method), response_class(method)
    if not method.server_streaming:
        return await channel.unary_unary(path, type(request).SerializeToString, output.FromString)(request, timeout=10)
    stream = channel.unary_stream(path, type(request).SerializeToString, output.FromString)(request, timeout=10)
    try:
        return await stream.read()
    finally:
        stream.cancel()


async def grpcurl(address: str, method: str, body: dict) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), "-plaintext", "-d", json.dumps(body), address, method,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, (out + err).decode()


async def test_grpcurl_sees_extreme_values_as_invalid_argument_and_reads_keep_working(on_sqlite_and_memory: Stack) -> None:
    targets = on_sqlite_and_memory.services.targets
    jobs = job_pb2_grpc.JobServiceStub(on_sqlite_and_memory.services.channels["job.v1.JobService"])
    await jobs.CreateJob(jpb.CreateJobRequest(job_type="grpcurl", dependencies=["openai"]))
    claimed = await jobs.ClaimJobs(jpb.ClaimJobsRequest(worker_id="grpcurl", job_type="grpcurl", max_jobs=1))
    cases = [
        ("job.v1.JobService", "CompleteJob", {"id": claimed.jobs[0].id, "workerId": "grpcurl", "callDuration": "9223372036s"}),
        ("job.v1.JobService", "GetJob", {"id": "x" * 5000}),
        ("breaker.v1.BreakerService", "ConfigureBreaker", {"dependency": "grpcurl", "config": {"slowCallDurationThreshold": "9223372036s"}}),
        ("breaker.v1.BreakerService", "RecordOutcome", {"dependency": "grpcurl", "result": "CALL_RESULT_FAILURE", "duration": "86401s"}),
        ("campaign.v1.CampaignService", "CreateCampaign", {"name": "\u0000", "dependencies": ["openai"]}),
        ("campaign.v1.CampaignService", "ListCampaigns", {"pageToken": "A" * 2000}),
    ]
    for service, method, body in cases:
        code, output = await grpcurl(targets[service], f"{service}/{method}", body)
        assert code != 0 and "Code: InvalidArgument" in output, f"{method}: {output}"
        assert len(output) < 600, output
    for service in targets:
        lister = next(m for m in EVERY_METHOD if m.containing_service.full_name == service and m.name.startswith("List"))
        code, output = await grpcurl(targets[service], f"{service}/{lister.name}", {})
        assert code == 0, output
