"""The Worker's parts on their own: how a handler's end becomes a finish, the finish batcher
(grouping, retries, a refused batch resent item by item) and the lease keeper. The sending and
renewing functions are plain coroutines here; the Worker against real services is in
tests/integration/test_worker.py."""

import asyncio

import grpc
from job.v1 import job_pb2

from services.breaker_state import BreakerState
from services.client.breakers import BreakerOpen
from services.client.worker.finishes import FinishBatcher, finish_raised, finish_returned
from services.client.worker.leases import LeaseKeeper

JOB = job_pb2.Job(id="j1", dependencies=["openai", "apollo"])


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def held(batch: list[job_pb2.JobFinish]) -> list[job_pb2.JobFinishResult]:
    return [job_pb2.JobFinishResult(id=f.id, lease_result=job_pb2.LEASE_RESULT_HELD) for f in batch]


def finish(job_id: str) -> job_pb2.JobFinish:
    return finish_returned(job_pb2.Job(id=job_id), {"n": 1})


def test_a_breaker_refusal_blames_its_provider_only_when_the_job_declared_it() -> None:
    declared = finish_raised(JOB, BreakerOpen("apollo", BreakerState.OPEN))
    assert declared.failure.failed_dependency == "apollo"
    assert finish_raised(JOB, BreakerOpen("stripe", BreakerState.OPEN)).failure.failed_dependency == ""
    plain = finish_raised(JOB, KeyError("domain"))
    assert (plain.failure.error, plain.failure.failed_dependency) == ("KeyError: 'domain'", "")


def test_return_values_become_completions_or_the_jobs_own_failure() -> None:
    assert finish_returned(JOB, None).WhichOneof("outcome") == "completion"
    assert dict(finish_returned(JOB, {"score": 3}).completion.result) == {"score": 3.0}
    assert "not a mapping" in finish_returned(JOB, 42).failure.error
    assert "not JSON-able" in finish_returned(JOB, {"at": object()}).failure.error


async def test_finishes_submitted_together_go_in_one_call_and_are_flushed_on_close() -> None:
    calls: list[list[str]] = []
    settled: list[tuple[str, bool]] = []

    async def send(batch: list[job_pb2.JobFinish]) -> list[job_pb2.JobFinishResult]:
        calls.append([f.id for f in batch])
        return held(batch)

    batcher = FinishBatcher(send, max_batch=3, delay_s=0.05, settled=lambda j, a: settled.append((j, a)))
    batcher.start()
    for n in range(5):
        batcher.submit(finish(f"j{n}"))
    await batcher.close()
    assert calls == [["j0", "j1", "j2"], ["j3", "j4"]]
    assert settled == [(f"j{n}", True) for n in range(5)]


async def test_an_unreachable_job_svc_is_retried_and_a_refused_batch_is_resent_item_by_item() -> None:
    calls: list[list[str]] = []

    async def send(batch: list[job_pb2.JobFinish]) -> list[job_pb2.JobFinishResult]:
        calls.append([f.id for f in batch])
        if len(calls) == 1:
            raise rpc_error(grpc.StatusCode.UNAVAILABLE)
        if any("huge" in f.completion.result for f in batch):
            raise rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "finishes[1].result is too large")
        return held(batch) if batch[0].id != "lost" else [job_pb2.JobFinishResult(id="lost", lease_result=job_pb2.LEASE_RESULT_LOST)]

    settled: dict[str, bool] = {}
    batcher = FinishBatcher(send, delay_s=0.01, settled=settled.__setitem__)
    batcher.start()
    too_large = finish_returned(job_pb2.Job(id="big"), {"huge": "x"})
    for item in (finish("a"), too_large, finish("lost")):
        batcher.submit(item)
    await batcher.close()
    assert calls[:2] == [["a", "big", "lost"]] * 2  # unavailable, then refused as a whole
    assert calls[2:] == [["a"], ["big"], ["big"], ["lost"]]  # one by one; "big" again as a failure
    assert settled == {"a": True, "big": True, "lost": False}


async def test_the_lease_keeper_renews_in_one_call_and_reports_each_lost_lease_once() -> None:
    renewed: list[list[str]] = []
    lost: list[str] = []

    async def renew(job_ids: list[str], lease_s: float) -> list[str]:
        renewed.append(sorted(job_ids))
        return ["b"]

    keeper = LeaseKeeper(renew, lease_s=0.3, on_lost=lost.append)
    loop = asyncio.get_running_loop()
    keeper.hold("a", loop.time())
    keeper.hold("b", loop.time())
    keeper.start()
    await asyncio.sleep(0.25)
    await keeper.close()
    assert renewed[0] == ["a", "b"] and all(ids == ["a"] for ids in renewed[1:])
    assert lost == ["b"]


async def test_a_lease_that_cannot_be_renewed_is_given_up_before_it_runs_out() -> None:
    lost: list[str] = []

    async def unreachable(job_ids: list[str], lease_s: float) -> list[str]:
        raise rpc_error(grpc.StatusCode.UNAVAILABLE)

    keeper = LeaseKeeper(unreachable, lease_s=0.6, on_lost=lost.append)
    keeper.hold("a", asyncio.get_running_loop().time())
    keeper.start()
    await asyncio.sleep(0.3)
    assert lost == []  # one failed renewal: the lease still has more than a third left
    await asyncio.sleep(0.25)
    await keeper.close()
    assert lost == ["a"]
