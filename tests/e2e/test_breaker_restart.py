"""A breaker_svc whose transition log is lost (the in-memory store of `make run`, restarted) must
not leave job_svc with stale breaker states, with real processes: breaker_svc (memory) and job_svc
on a SQLite file.

job_svc stores the revision it applied. After the restart the new log counts from 0 again; by the
time job_svc resumes, the new log has passed that revision, with a ForceOpen before it. Resumed by
revision alone, job_svc would be replayed only the new log's events after its old revision and
never hear of the ForceOpen: a job of that dependency would stay claimable while its breaker is
FORCED_OPEN. With the log's epoch sent along, breaker_svc answers with a reset snapshot instead.
"""

import signal
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.polling import eventually

BREAKER_ENV = {
    "BREAKER_STORE": "memory",
    "BREAKER_HEARTBEAT_S": "0.3",
    "ADMIN_TOKEN": "",
    "SHUTDOWN_GRACE_S": "2",
}
CHURN, BLOCKED = "openai", "apollo"
CHANGES = 6  # revisions 1..6 before the restart; after it a ForceOpen then 6 more: revision 7


async def churn(breakers: breaker_pb2_grpc.BreakerServiceStub, times: int) -> int:
    """Force-opens then force-closes CHURN alternately (ending closed); returns the last revision."""
    revision = 0
    for i in range(times):
        if i % 2 == 0:
            response = await breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=CHURN, reason="churn"))
        else:
            response = await breakers.ForceClose(breaker_pb2.ForceCloseRequest(dependency=CHURN, reason="churn"))
        revision = response.breaker.revision
    return revision


async def applied_up_to(jobs: job_pb2_grpc.JobServiceStub, revision: int) -> job_pb2.GetQueueStatusResponse | None:
    status = await jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())
    return status if status.applied_revision >= revision and not status.breaker_state_stale else None


async def claimable(jobs: job_pb2_grpc.JobServiceStub, worker: str) -> list[job_pb2.Job]:
    request = job_pb2.ClaimJobsRequest(worker_id=worker, dependencies=[BLOCKED], max_jobs=10)
    return list((await jobs.ClaimJobs(request)).jobs)


async def test_a_restarted_in_memory_breaker_svc_resets_job_svc_instead_of_replaying_a_new_log_from_an_old_revision(
    service_process, tmp_path: Path
) -> None:
    breaker = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT")
    job_env = {
        "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}",
        "BREAKER_TARGET": breaker.address,
        "JOB_BREAKER_STALE_AFTER_S": "30",
    }
    job_svc = service_process("job_svc", job_env, port_env="JOB_PORT")
    async with grpc.aio.insecure_channel(job_svc.address) as j_channel:
        jobs = job_pb2_grpc.JobServiceStub(j_channel)
        created = await jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=[BLOCKED]))

        # First life: revisions 1..6, all applied by job_svc.
        async with grpc.aio.insecure_channel(breaker.address) as b_channel:
            assert await churn(breaker_pb2_grpc.BreakerServiceStub(b_channel), CHANGES) == CHANGES
        await eventually(lambda: applied_up_to(jobs, CHANGES), timeout_s=20)

        # job_svc is away (paused) while breaker_svc restarts and its new log passes revision 6.
        assert job_svc.process is not None
        job_svc.process.send_signal(signal.SIGSTOP)
        try:
            assert breaker.terminate() == 0
            restarted = service_process("breaker_svc", BREAKER_ENV, port_env="BREAKER_PORT", port=breaker.port)
            async with grpc.aio.insecure_channel(restarted.address) as b_channel:
                breakers = breaker_pb2_grpc.BreakerServiceStub(b_channel)
                opened = await breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency=BLOCKED, reason="incident"))
                assert opened.breaker.revision == 1  # the new log starts again
                last = await churn(breakers, CHANGES)
                assert last == CHANGES + 1 > CHANGES
        finally:
            job_svc.process.send_signal(signal.SIGCONT)

        # job_svc reconnects with the position it applied (revision 6 of the old log).
        status = await eventually(lambda: applied_up_to(jobs, last), timeout_s=20)
        assert BLOCKED in status.blocked_dependencies
        states = {d.dependency: d.breaker_state for d in status.dependencies}
        assert states[BLOCKED] == breaker_pb2.BREAKER_STATE_FORCED_OPEN
        assert await claimable(jobs, "w1") == []
        job = (await jobs.GetJob(job_pb2.GetJobRequest(id=created.job.id))).job
        assert job.status == job_pb2.JOB_STATUS_PAUSED
