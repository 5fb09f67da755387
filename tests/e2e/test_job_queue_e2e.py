"""The queue with real processes: the README's job commands through grpcurl, a worker process
SIGKILLed while holding renewed leases, two job_svc replicas handing each job to exactly one of
several waiting workers, and SIGTERM ending a waiting claim at once."""

import asyncio
import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.job import claim_request, create_request
from tests.support.processes import REPO, ServiceProcess

GRPCURL = Path(sys.executable).parent / "grpcurl"
NO_BREAKER = {"BREAKER_TARGET": "127.0.0.1:1"}
S = job_pb2


def start_job_svc(service_process, database_url: str, **env: str) -> ServiceProcess:  # type: ignore[no-untyped-def]
    return service_process("job_svc", {**NO_BREAKER, "JOB_DATABASE_URL": database_url, **env}, port_env="JOB_PORT")


def readme_job_commands() -> list[str]:
    """The grpcurl commands of the README's section on the queue's batch and waiting calls,
    continuation lines joined, in order."""
    text = (REPO / "README.md").read_text().replace("\\\n", " ")
    section = text.split("## The queue's batch and waiting calls", 1)[1].split("\n## ", 1)[0]
    return [line.strip() for line in section.splitlines() if line.startswith("grpcurl")]


def run_readme_command(command: str, address: str, ids: dict[str, str], admin_token: str) -> dict:
    """One README command as a user runs it (bash, $ADMIN_TOKEN from the environment), aimed at
    the test's process, with the ids it names filled in."""
    for placeholder, value in ids.items():
        command = command.replace(placeholder, value)
    command = command.replace("localhost:50053", address).replace("grpcurl ", f"{GRPCURL} ", 1)
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, env={"ADMIN_TOKEN": admin_token})
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    return json.loads(done.stdout)


async def test_the_readmes_job_commands_work_verbatim_through_grpcurl_and_sigterm_ends_waiting_claims(
    service_process, tmp_path: Path
) -> None:
    process = start_job_svc(service_process, f"sqlite:///{tmp_path / 'job.db'}", ADMIN_TOKEN="t0ken", SHUTDOWN_GRACE_S="20")
    commands = {re.search(r"JobService/(\w+)", c).group(1): c for c in readme_job_commands()}  # type: ignore[union-attr]
    assert commands.keys() == {"CreateJobs", "ClaimJobs", "RenewLeases", "FinishJobs", "GetJob", "RedriveJobs", "ListJobs"}
    run = lambda name, ids={}: run_readme_command(commands[name], process.address, ids, "t0ken")  # noqa: E731
    async with grpc.aio.insecure_channel(process.address) as channel:
        await job_pb2_grpc.JobServiceStub(channel).CreateJob(create_request(["perplexity"], payload={"lead": 7}))
    created = run("CreateJobs")["jobs"]
    assert [j.get("priority", 0) for j in created] == [-5, 0] and created[1]["status"] == "JOB_STATUS_PENDING"
    claimed = run("ClaimJobs")["jobs"]
    assert [j["payload"]["lead"] for j in claimed] == [8, 7]  # priority -5 first; the delayed job waits
    ids = {"<id2>": claimed[0]["id"], "<id>": claimed[1]["id"]}
    renewals = run("RenewLeases", ids)["renewals"]
    assert [r["lease_result"] for r in renewals] == ["LEASE_RESULT_HELD"] * 2
    async with grpc.aio.insecure_channel(process.address) as channel:
        next_job = (await job_pb2_grpc.JobServiceStub(channel).CreateJob(create_request(["apollo"], payload={"lead": 9}))).job
    finished = run("FinishJobs", ids)
    assert [(r["lease_result"], r["status"]) for r in finished["results"]] == [
        ("LEASE_RESULT_HELD", "JOB_STATUS_COMPLETED"), ("LEASE_RESULT_HELD", "JOB_STATUS_FAILED")
    ]
    assert [(j["id"], j["status"], j["lease_owner"]) for j in finished["claimed_jobs"]] == [(next_job.id, "JOB_STATUS_PROCESSING", "w1")]
    assert run("GetJob", ids)["job"]["result"] == {"emails": 3}
    assert [j["id"] for j in run("ListJobs")["jobs"]] == [ids["<id2>"]]
    assert run("RedriveJobs")["redriven_count"] == "1"
    await sigterm_ends_a_waiting_claim(process)


async def sigterm_ends_a_waiting_claim(process: ServiceProcess) -> None:
    async with grpc.aio.insecure_channel(process.address) as channel:
        request = claim_request("idle", ["nothing-here"], 1)
        request.wait.CopyFrom(Duration(seconds=60))
        waiting = asyncio.ensure_future(job_pb2_grpc.JobServiceStub(channel).ClaimJobs(request))
        await asyncio.sleep(0.5)
        started = time.monotonic()
        exit_code = await asyncio.to_thread(process.terminate)
        response = await asyncio.wait_for(waiting, 5)
    assert exit_code == 0 and not response.jobs
    assert time.monotonic() - started < 5  # not the 60 s wait, nor the 20 s grace


WORKER = """
import json, sys, time
import grpc
from job.v1 import job_pb2, job_pb2_grpc
from google.protobuf.duration_pb2 import Duration

stub = job_pb2_grpc.JobServiceStub(grpc.insecure_channel(sys.argv[1]))
lease = Duration(seconds=1)
claimed = stub.ClaimJobs(job_pb2.ClaimJobsRequest(worker_id="doomed", max_jobs=3, lease_duration=lease)).jobs
print(json.dumps([job.id for job in claimed]), flush=True)
while True:  # "working": renewing the leases until killed
    time.sleep(0.25)
    stub.RenewLeases(job_pb2.RenewLeasesRequest(worker_id="doomed", ids=[job.id for job in claimed], lease_duration=lease))
"""


async def test_a_killed_workers_renewed_leases_expire_and_another_worker_finishes_its_jobs(
    service_process, database_url: str
) -> None:
    process = start_job_svc(service_process, database_url, JOB_SWEEP_INTERVAL_S="0.2")
    async with grpc.aio.insecure_channel(process.address) as channel:
        stub = job_pb2_grpc.JobServiceStub(channel)
        await stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=[create_request(["apollo"]) for _ in range(3)]))
        worker = subprocess.Popen([sys.executable, "-c", WORKER, process.address], cwd=REPO, stdout=subprocess.PIPE, text=True)
        try:
            held = json.loads(await asyncio.to_thread(worker.stdout.readline))  # type: ignore[union-attr]
            assert len(held) == 3
            await asyncio.sleep(1.5)  # past the first lease: only renewals keep the jobs
            for job_id in held:
                job = (await stub.GetJob(job_pb2.GetJobRequest(id=job_id))).job
                assert (job.status, job.lease_owner) == (S.JOB_STATUS_PROCESSING, "doomed")
        finally:
            worker.kill()
            worker.wait(10)
        waiting = claim_request("heir", ["apollo"], 10, lease_s=30)
        waiting.wait.CopyFrom(Duration(seconds=10))
        started = time.monotonic()
        claimed: list[job_pb2.Job] = []
        while len(claimed) < 3 and time.monotonic() - started < 15:
            claimed += (await stub.ClaimJobs(waiting)).jobs
        assert sorted(j.id for j in claimed) == sorted(held)
        assert all(j.lease_expirations == 1 and "doomed" in j.last_error for j in claimed)
        finishes = [job_pb2.JobFinish(id=j.id, completion=job_pb2.JobCompletion()) for j in claimed]
        finishes[0].completion.result.update({"by": "heir"})
        results = (await stub.FinishJobs(job_pb2.FinishJobsRequest(worker_id="heir", finishes=finishes))).results
        assert {r.lease_result for r in results} == {S.LEASE_RESULT_HELD}
        late = job_pb2.CompleteJobRequest(id=held[0], worker_id="doomed")
        late.result.update({"by": "doomed"})
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.CompleteJob(late)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        late_batch = job_pb2.FinishJobsRequest(worker_id="doomed", finishes=[job_pb2.JobFinish(id=held[1], failure=job_pb2.JobFailure(error="late"))])
        assert [r.lease_result for r in (await stub.FinishJobs(late_batch)).results] == [S.LEASE_RESULT_LOST]
        done = {j.id: j for j in (await stub.ListJobs(job_pb2.ListJobsRequest(dependency="apollo"))).jobs}
        assert {j.status for j in done.values()} == {S.JOB_STATUS_COMPLETED}
        assert dict(done[claimed[0].id].result) == {"by": "heir"}


async def test_two_replicas_hand_each_job_to_exactly_one_of_several_waiting_workers(service_process, postgres_url: str) -> None:
    replicas = [start_job_svc(service_process, postgres_url) for _ in range(2)]
    channels = [grpc.aio.insecure_channel(r.address) for r in replicas]
    stubs = [job_pb2_grpc.JobServiceStub(c) for c in channels]
    total, received = 40, []

    async def worker(name: str, stub: job_pb2_grpc.JobServiceStub) -> None:
        request = claim_request(name, ["openai"], 1, lease_s=60)
        request.wait.CopyFrom(Duration(seconds=1))
        deadline = time.monotonic() + 20
        while len(received) < total and time.monotonic() < deadline:
            received.extend((job.id, name) for job in (await stub.ClaimJobs(request)).jobs)

    try:
        workers = [asyncio.create_task(worker(f"r{i % 2}-w{i}", stubs[i % 2])) for i in range(6)]
        await asyncio.sleep(0.5)  # every worker is waiting on an empty queue
        for batch in range(4):  # arriving over time, through one replica only
            items = [create_request(["openai"], job_type=f"b{batch}") for _ in range(total // 4)]
            await stubs[0].CreateJobs(job_pb2.CreateJobsRequest(jobs=items))
            await asyncio.sleep(0.2)
        await asyncio.wait_for(asyncio.gather(*workers), 30)
    finally:
        for channel in channels:
            await channel.close()
    per_job = Counter(job_id for job_id, _ in received)
    assert len(per_job) == total and set(per_job.values()) == {1}
    assert {name[:2] for _, name in received} == {"r0", "r1"}  # the other replica's waiters were woken too
