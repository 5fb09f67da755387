"""bench.bare_job_server as a process, driven by bench.job_queue's own client code: the third
side of that benchmark must serve every path it measures (answers shaped as job_svc's)."""

from pathlib import Path

from job.v1 import job_pb2, job_pb2_grpc

from bench.job_queue import BareSide, claim_request, create_request


async def test_the_bare_server_serves_every_path_of_the_queue_bench(tmp_path: Path) -> None:
    side = BareSide.on(tmp_path)
    side.start()
    try:
        await side.probe()
        assert side.missing == set()

        async with side.channel() as channel:
            stub = job_pb2_grpc.JobServiceStub(channel)
            basic = await stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=[create_request(0), create_request(1)], view=job_pb2.JOB_VIEW_BASIC))
            assert [(bool(j.id), j.status, j.job_type) for j in basic.jobs] == [(True, job_pb2.JOB_STATUS_PENDING, "")] * 2
            claimed = (await stub.ClaimJobs(claim_request("w"))).jobs
            assert [(j.status, j.lease_owner, j.payload["n"], list(j.dependencies)) for j in claimed] == [
                (job_pb2.JOB_STATUS_PROCESSING, "w", 0, ["openai"]), (job_pb2.JOB_STATUS_PROCESSING, "w", 1, ["openai"])
            ]
            assert all(j.HasField("lease_expire_time") and j.HasField("create_time") for j in claimed)
            completed = await stub.CompleteJob(job_pb2.CompleteJobRequest(id=claimed[0].id, worker_id="w"))
            assert (completed.job.id, completed.job.status) == (claimed[0].id, job_pb2.JOB_STATUS_COMPLETED)
            await stub.CreateJobs(job_pb2.CreateJobsRequest(jobs=[create_request(n) for n in range(2, 5)]))
            # FinishJobs' next claim claims as ClaimJobs does, as job_svc's does.
            finish = job_pb2.JobFinish(id=claimed[1].id, completion=job_pb2.JobCompletion())
            request = job_pb2.FinishJobsRequest(worker_id="w", finishes=[finish], next_claim=job_pb2.NextClaim(max_jobs=10))
            answer = await stub.FinishJobs(request)
            assert [r.lease_result for r in answer.results] == [job_pb2.LEASE_RESULT_HELD]
            assert [(j.status, j.lease_owner, j.payload["n"]) for j in answer.claimed_jobs] == [
                (job_pb2.JOB_STATUS_PROCESSING, "w", n) for n in range(2, 5)
            ]
            assert not (await stub.FinishJobs(request)).claimed_jobs  # the queue is empty

        for batched in (False, True):
            await side.empty()
            await side.fill(25)
            assert await side.drain(25, batched) > 0  # drain asserts that exactly 25 were drained
        await side.empty()
        assert await side.end_to_end(30) > 0
        assert len(await side.wakeups(3)) == 3
    finally:
        side.stop()
