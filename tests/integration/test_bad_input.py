"""Bad input never reaches storage, never answers UNKNOWN or INTERNAL, and errors stay short and
speak the contract's names: through real channels to the three services wired together
(job_svc and campaign_svc on SQLite, breaker_svc in memory)."""

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from breaker.v1 import breaker_pb2 as bpb
from breaker.v1 import breaker_pb2_grpc
from campaign.v1 import campaign_pb2 as cpb
from campaign.v1 import campaign_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Struct
from job.v1 import job_pb2 as jpb
from job.v1 import job_pb2_grpc

from breaker_svc.store.memory import MemoryStore
from services.pagination import encode_page_token
from tests.support.services import EVERY_METHOD, Services, call_raw, request_class, three_services

INVALID = grpc.StatusCode.INVALID_ARGUMENT
INT64_MAX = 2**63 - 1
JSON_MAX_DURATION_S = 315_576_000_000  # protobuf JSON cannot print a longer Duration
INTERNAL_NAMES = ("window_size", "open_wait_s", "max_open_wait_s", "max_half_open_wait_s", "slow_call_duration_threshold_s")


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Services]:
    folder: Path = tmp_path_factory.mktemp("bad-input")
    async with three_services(MemoryStore(), f"sqlite:///{folder / 'job.db'}", f"sqlite:///{folder / 'campaign.db'}") as running:
        yield running


@pytest.fixture(scope="module")
def breakers(services: Services) -> breaker_pb2_grpc.BreakerServiceStub:
    return breaker_pb2_grpc.BreakerServiceStub(services.channels["breaker.v1.BreakerService"])


@pytest.fixture(scope="module")
def jobs(services: Services) -> job_pb2_grpc.JobServiceStub:
    return job_pb2_grpc.JobServiceStub(services.channels["job.v1.JobService"])


@pytest.fixture(scope="module")
def campaigns(services: Services) -> campaign_pb2_grpc.CampaignServiceStub:
    return campaign_pb2_grpc.CampaignServiceStub(services.channels["campaign.v1.CampaignService"])


async def refused(call, code: grpc.StatusCode = INVALID) -> str:
    """Awaits a call that must end with `code`; returns its message."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    assert raised.value.code() == code, f"{raised.value.code().name}: {raised.value.details()}"
    return raised.value.details()


# --- durations: a range for each, checked before anything is stored ---------------------------


async def claimed_job(jobs: job_pb2_grpc.JobServiceStub) -> jpb.Job:
    dependency = f"dep-{uuid.uuid4().hex[:8]}"
    await jobs.CreateJob(jpb.CreateJobRequest(job_type="t", dependencies=[dependency]))
    claimed = await jobs.ClaimJobs(jpb.ClaimJobsRequest(worker_id="w", dependencies=[dependency], max_jobs=1))
    return claimed.jobs[0]


@pytest.mark.parametrize("seconds", [INT64_MAX, 86_401, -1])
async def test_complete_and_fail_refuse_call_durations_outside_a_day_and_leave_the_job_leased(jobs, seconds) -> None:
    job = await claimed_job(jobs)
    duration = Duration(seconds=seconds)

    message = await refused(jobs.CompleteJob(jpb.CompleteJobRequest(id=job.id, worker_id="w", call_duration=duration)))
    assert "call_duration" in message
    request = jpb.FailJobRequest(id=job.id, worker_id="w", failed_dependency=job.dependencies[0], call_duration=duration)
    assert "call_duration" in await refused(jobs.FailJob(request))

    after = (await jobs.GetJob(jpb.GetJobRequest(id=job.id))).job
    assert after.status == jpb.JOB_STATUS_PROCESSING and after.attempts == 0
    done = await jobs.CompleteJob(jpb.CompleteJobRequest(id=job.id, worker_id="w", call_duration=Duration(seconds=86_400)))
    assert done.job.status == jpb.JOB_STATUS_COMPLETED


async def test_record_outcome_refuses_a_duration_beyond_a_day(breakers) -> None:
    request = bpb.RecordOutcomeRequest(dependency="slowpoke", result=bpb.CALL_RESULT_SUCCESS, duration=Duration(seconds=INT64_MAX))
    assert "duration" in await refused(breakers.RecordOutcome(request))
    await refused(breakers.GetBreaker(bpb.GetBreakerRequest(dependency="slowpoke")), grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize(
    "field, seconds",
    [
        ("slow_call_duration_threshold", INT64_MAX),
        ("slow_call_duration_threshold", JSON_MAX_DURATION_S + 1),
        ("open_wait_duration", JSON_MAX_DURATION_S),
        ("max_open_wait_duration", 86_401),
        ("max_half_open_wait_duration", INT64_MAX),
    ],
)
async def test_configure_refuses_a_duration_out_of_range_stores_nothing_and_reads_keep_working(breakers, field, seconds) -> None:
    dependency = f"cfg-{uuid.uuid4().hex[:8]}"
    config = bpb.BreakerConfig(**{field: Duration(seconds=seconds)})
    request = bpb.ConfigureBreakerRequest(dependency=dependency, config=config, update_mask=FieldMask(paths=[field]))

    assert field in await refused(breakers.ConfigureBreaker(request))

    await refused(breakers.GetBreaker(bpb.GetBreakerRequest(dependency=dependency)), grpc.StatusCode.NOT_FOUND)
    await breakers.ListBreakers(bpb.ListBreakersRequest(page_size=1000))
    watch = breakers.WatchTransitions(bpb.WatchTransitionsRequest())
    assert (await watch.read()).HasField("snapshot")
    watch.cancel()


@pytest.mark.parametrize(
    "config, paths, field",
    [
        (bpb.BreakerConfig(sliding_window_size=20_000), [], "sliding_window_size"),
        (bpb.BreakerConfig(open_wait_duration=Duration(seconds=90_000)), [], "open_wait_duration"),
        (bpb.BreakerConfig(open_wait_duration=Duration(seconds=60), max_open_wait_duration=Duration(seconds=30)), [], "max_open_wait_duration"),
        (bpb.BreakerConfig(max_half_open_wait_duration=Duration(seconds=90_000)), [], "max_half_open_wait_duration"),
        (bpb.BreakerConfig(slow_call_duration_threshold=Duration(seconds=0)), ["slow_call_duration_threshold"], "slow_call_duration_threshold"),
        (bpb.BreakerConfig(sliding_window_size=5, minimum_calls=6), [], "sliding_window_size"),
    ],
)
async def test_config_errors_name_the_contracts_fields(breakers, config, paths, field) -> None:
    request = bpb.ConfigureBreakerRequest(dependency="named", config=config, update_mask=FieldMask(paths=paths))
    message = await refused(breakers.ConfigureBreaker(request))
    assert field in message
    assert not any(name in message.replace(field, "") for name in INTERNAL_NAMES), message


async def test_an_unset_window_type_named_in_the_mask_is_refused_saying_what_to_set(breakers) -> None:
    request = bpb.ConfigureBreakerRequest(dependency="masked", config=bpb.BreakerConfig(), update_mask=FieldMask(paths=["sliding_window_type"]))
    message = await refused(breakers.ConfigureBreaker(request))
    assert "sliding_window_type" in message and "SLIDING_WINDOW_TYPE_COUNT_BASED" in message
    assert "name them in update_mask" not in message


# --- payloads and page tokens -------------------------------------------------------------------


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
async def test_nan_or_infinity_in_a_payload_is_invalid_argument(jobs, number) -> None:
    payload = Struct()
    payload.update({"lead": {"score": number}})
    request = jpb.CreateJobRequest(job_type="t", dependencies=["openai"], payload=payload)
    assert "NaN or Infinity" in await refused(jobs.CreateJob(request))


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
async def test_a_page_token_with_an_extreme_time_is_invalid_argument(jobs, campaigns, moment) -> None:
    position = {"t": moment, "id": str(uuid.uuid4())}
    job_token = encode_page_token(position, {"status": "", "campaign_id": "", "dependency": ""})
    assert "page_token" in await refused(jobs.ListJobs(jpb.ListJobsRequest(page_token=job_token)))
    campaign_token = encode_page_token(position, {"status": ""})
    assert "page_token" in await refused(campaigns.ListCampaigns(cpb.ListCampaignsRequest(page_token=campaign_token)))


# --- echoed values are cut ----------------------------------------------------------------------


@pytest.mark.parametrize("length", [5_000, 1_000_000])
async def test_errors_echo_only_a_short_prefix_of_a_huge_value(jobs, campaigns, breakers, length) -> None:
    huge = "x" * length
    for call in [
        jobs.GetJob(jpb.GetJobRequest(id=huge)),
        jobs.ListJobs(jpb.ListJobsRequest(campaign_id=huge)),
        campaigns.GetCampaign(cpb.GetCampaignRequest(id=huge)),
        breakers.ConfigureBreaker(bpb.ConfigureBreakerRequest(dependency="echo", update_mask=FieldMask(paths=[huge]))),
    ]:
        message = await refused(call)
        assert len(message) < 150, message


async def test_a_worker_id_is_echoed_cut_short(jobs) -> None:
    job = await claimed_job(jobs)
    message = await refused(jobs.CompleteJob(jpb.CompleteJobRequest(id=job.id, worker_id="v" * 200)), grpc.StatusCode.FAILED_PRECONDITION)
    assert "v" * 40 + "'..." in message and "v" * 41 not in message


# --- bytes that do not decode ---------------------------------------------------------------------


def _nested_struct(depth: int) -> bytes:
    value = Struct()
    inner = value
    for _ in range(depth):
        inner = inner.get_or_create_struct("a")
    return value.SerializeToString()


UNDECODABLE = {
    "invalid UTF-8 in field 1": b"\x0a\x02\xc3\x28",
    "a truncated field": b"\x0a\x05ab",
    "a bad tag": b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
}


@pytest.mark.parametrize("method", EVERY_METHOD, ids=lambda m: m.name)
async def test_undecodable_bytes_are_invalid_argument_with_a_plain_message(services, method) -> None:
    for what, raw in UNDECODABLE.items():
        if what.startswith("invalid UTF-8") and not _first_field_is_a_string(method):
            continue
        answer = await call_raw(services.channel(method), method, [raw])
        assert answer.code == INVALID, f"{what}: {answer.code.name} {answer.details}"
        assert "Error" not in answer.details and "class" not in answer.details and "proto" not in answer.details.lower()


async def test_a_struct_nested_too_deep_is_invalid_argument(services) -> None:
    method = next(m for m in EVERY_METHOD if m.name == "CreateJob")
    raw = request_class(method)(job_type="t", dependencies=["openai"]).SerializeToString() + b"\x2a" + _length(_nested_struct(60))
    answer = await call_raw(services.channel(method), method, [raw])
    assert answer.code == INVALID, f"{answer.code.name} {answer.details}"


async def test_an_undecodable_message_in_the_outcome_stream_is_invalid_argument_and_records_nothing(services, breakers) -> None:
    method = next(m for m in EVERY_METHOD if m.name == "RecordOutcomes")
    good = bpb.RecordOutcomesRequest(dependency="streamed", result=bpb.CALL_RESULT_SUCCESS).SerializeToString()
    answer = await call_raw(services.channel(method), method, [good, b"\x0a\x02\xc3\x28", good])
    assert answer.code == INVALID, f"{answer.code.name} {answer.details}"
    await refused(breakers.GetBreaker(bpb.GetBreakerRequest(dependency="streamed")), grpc.StatusCode.NOT_FOUND)


def _length(payload: bytes) -> bytes:
    """A length-delimited field's varint length, then the bytes."""
    size, prefix = len(payload), b""
    while size >= 0x80:
        prefix += bytes([size & 0x7F | 0x80])
        size >>= 7
    return prefix + bytes([size]) + payload


def _first_field_is_a_string(method) -> bool:
    field = method.input_type.fields_by_number.get(1)
    return field is not None and field.type == field.TYPE_STRING
