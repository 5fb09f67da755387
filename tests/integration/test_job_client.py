"""JobClient, the typed job.v1 client, against a real job_svc over gRPC (SQLite): each call,
the request ids that make creates safe to retry, and SyncJobClient from several threads."""

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from google.protobuf import json_format
from job.v1 import job_pb2

from services.client import JobClient, SyncJobClient, job_request
from services.client.jobs import completion, failure, struct
from tests.support.job import RunningJobs, running_jobs, unique

P = job_pb2


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunningJobs]:
    async with running_jobs(f"sqlite:///{tmp_path_factory.mktemp('jobs') / 'job.db'}") as running:
        yield running


@pytest.fixture
async def jobs(served: RunningJobs) -> AsyncIterator[JobClient]:
    async with JobClient(f"127.0.0.1:{served.app.port}", tls=None) as client:
        yield client


async def test_a_create_repeated_with_its_request_id_returns_the_first_job(jobs: JobClient) -> None:
    job_type, dependency = unique("type"), unique()
    first = await jobs.create(job_type, [dependency], {"lead": 1}, request_id="lead-1-" + job_type, priority=-5)
    again = await jobs.create(job_type, [dependency], {"lead": 2}, request_id="lead-1-" + job_type)
    assert again.id == first.id and first.priority == -5
    batch = await jobs.create_many([job_request(job_type, [dependency], {"lead": n}) for n in range(3)])
    assert [json_format.MessageToDict(j.payload) for j in batch] == [{"lead": n} for n in range(3)]
    listed = await jobs.list_all(job_type=job_type)
    assert {j.id for j in listed} == {first.id, *(j.id for j in batch)}
    with pytest.raises(ValueError, match="request_id"):
        await jobs.create_many([P.CreateJobRequest(job_type=job_type, dependencies=[dependency])])


async def test_create_many_sends_calls_of_1000_side_by_side_and_a_resend_creates_nothing_twice(jobs: JobClient) -> None:
    job_type, dependency = unique("type"), unique()
    requests = [job_request(job_type, [dependency], {"lead": n}) for n in range(2500)]
    created = await jobs.create_many(requests, view=P.JOB_VIEW_BASIC, in_flight=2)
    assert len({j.id for j in created}) == 2500 and {j.status for j in created} == {P.JOB_STATUS_PENDING}
    assert not created[0].job_type  # BASIC: ids and statuses only
    again = await jobs.create_many(requests)
    assert [j.id for j in again] == [j.id for j in created]  # same order, nothing created twice
    assert [json_format.MessageToDict(j.payload) for j in again[999:1001]] == [{"lead": 999}, {"lead": 1000}]
    assert await jobs.create_many([]) == []
    with pytest.raises(ValueError, match="in_flight"):
        await jobs.create_many(requests, in_flight=0)


async def test_a_waiting_claim_returns_when_a_job_arrives_and_the_worker_calls_end_it(jobs: JobClient) -> None:
    job_type, dependency = unique("type"), unique()
    waiting = asyncio.create_task(jobs.claim("w1", 5, lease_s=30, wait_s=10, job_type=job_type))
    await asyncio.sleep(0.2)
    created = await jobs.create(job_type, [dependency], delay_s=0)
    claimed = await asyncio.wait_for(waiting, 5)
    assert [j.id for j in claimed] == [created.id]

    renewed = await jobs.renew("w1", [created.id], 60)
    assert [r.lease_result for r in renewed] == [P.LEASE_RESULT_HELD]
    assert [r.lease_result for r in await jobs.renew("someone-else", [created.id], 60)] == [P.LEASE_RESULT_LOST]
    done = completion(struct({"score": 9}))
    done.id = created.id
    results = await jobs.finish("w1", [done])
    assert [(r.id, r.lease_result, r.status) for r in results] == [(created.id, P.LEASE_RESULT_HELD, P.JOB_STATUS_COMPLETED)]
    again = failure("too late")
    again.id = created.id
    assert [r.lease_result for r in await jobs.finish("w1", [again])] == [P.LEASE_RESULT_LOST]
    assert json_format.MessageToDict((await jobs.get(created.id)).result) == {"score": 9}


async def test_complete_and_fail_one_claim_at_a_time(jobs: JobClient) -> None:
    job_type, dependency = unique("type"), unique()
    first, second = [await jobs.create(job_type, [dependency], max_attempts=2) for _ in range(2)]
    assert {j.id for j in await jobs.claim("w2", 2, job_type=job_type)} == {first.id, second.id}
    completed = await jobs.complete(first.id, "w2", {"ok": True})
    assert completed.status == P.JOB_STATUS_COMPLETED
    blamed = await jobs.fail(second.id, "w2", "provider answered 503", failed_dependency=dependency)
    assert (blamed.status, blamed.attempts) == (P.JOB_STATUS_PENDING, 0)


async def test_sync_job_client_is_shared_by_threads(served: RunningJobs) -> None:
    job_type, dependency = unique("type"), unique()

    def from_threads() -> list[float]:
        with SyncJobClient(f"127.0.0.1:{served.app.port}", tls=None) as jobs:
            with ThreadPoolExecutor(4) as threads:
                created = list(threads.map(lambda n: jobs.create(job_type, [dependency], {"n": n}), range(8)))
            return sorted(json_format.MessageToDict(jobs.get(j.id).payload)["n"] for j in created)

    assert await asyncio.to_thread(from_threads) == list(range(8))  # job_svc serves on this loop meanwhile


async def test_finish_and_claim_answers_the_finishes_and_the_next_jobs_in_one_call(jobs: JobClient, served: RunningJobs) -> None:
    job_type, dependency = unique("type"), unique()
    first = await jobs.create(job_type, [dependency])
    (claimed,) = await jobs.claim("w3", 1, job_type=job_type)
    rest = [await jobs.create(job_type, [dependency], {"n": n}) for n in range(2)]
    done = completion(struct({"ok": 1}))
    done.id = claimed.id
    answer = await jobs.finish_and_claim("w3", [done], 5, lease_s=90, job_type=job_type, dependencies=[dependency])
    assert [(r.id, r.lease_result) for r in answer.results] == [(first.id, P.LEASE_RESULT_HELD)]
    assert [(j.id, j.status, j.lease_owner) for j in answer.claimed_jobs] == [(j.id, P.JOB_STATUS_PROCESSING, "w3") for j in rest]

    def from_a_thread() -> P.FinishJobsResponse:
        with SyncJobClient(f"127.0.0.1:{served.app.port}", tls=None) as sync_jobs:
            finishes = [completion() for _ in rest]
            for finish, job in zip(finishes, rest):
                finish.id = job.id
            return sync_jobs.finish_and_claim("w3", finishes, 5, job_type=job_type)

    answer = await asyncio.to_thread(from_a_thread)
    assert [r.lease_result for r in answer.results] == [P.LEASE_RESULT_HELD] * 2 and not answer.claimed_jobs
