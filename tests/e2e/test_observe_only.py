"""Auto-pause off (JOB_AUTO_PAUSE=off, CAMPAIGN_AUTO_PAUSE=off): job_svc and campaign_svc follow,
log and count breaker transitions but touch no record; restarted with it on, they reconcile at
once."""

import urllib.request
from pathlib import Path

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.polling import eventually_sync
from tests.support.processes import free_port


def metric_line(port: int, prefix: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return next((line for line in response.read().decode().splitlines() if line.startswith(prefix)), "")


def test_observe_only_touches_no_record_and_switching_on_reconciles_at_once(service_process, tmp_path: Path) -> None:
    breaker = service_process("breaker_svc", {"BREAKER_STORE": "memory", "BREAKER_HEARTBEAT_S": "0.5"}, port_env="BREAKER_PORT")
    job_port, campaign_port, job_metrics, campaign_metrics = (free_port() for _ in range(4))
    job_env = {"JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}", "BREAKER_TARGET": breaker.address}
    campaign_env = {"CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}", "BREAKER_TARGET": breaker.address,
                    "JOB_TARGET": f"127.0.0.1:{job_port}"}

    def start(auto_pause: str):  # type: ignore[no-untyped-def]
        jobs = service_process("job_svc", {**job_env, "JOB_AUTO_PAUSE": auto_pause, "JOB_METRICS_PORT": str(job_metrics)},
                               port_env="JOB_PORT", port=job_port)
        campaigns = service_process("campaign_svc", {**campaign_env, "CAMPAIGN_AUTO_PAUSE": auto_pause,
                                                     "CAMPAIGN_METRICS_PORT": str(campaign_metrics)},
                                    port_env="CAMPAIGN_PORT", port=campaign_port)
        return jobs, campaigns

    observing = start("off")
    with grpc.insecure_channel(breaker.address) as b, grpc.insecure_channel(f"127.0.0.1:{job_port}") as j, \
            grpc.insecure_channel(f"127.0.0.1:{campaign_port}") as c:
        breakers, jobs, campaigns = breaker_pb2_grpc.BreakerServiceStub(b), job_pb2_grpc.JobServiceStub(j), campaign_pb2_grpc.CampaignServiceStub(c)
        job = jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=["perplexity"])).job
        campaign = campaigns.CreateCampaign(campaign_pb2.CreateCampaignRequest(name="Q4", dependencies=["perplexity"])).campaign
        eventually_sync(lambda: not campaigns.GetPauseStatus(campaign_pb2.GetPauseStatusRequest()).breaker_state_stale)
        campaigns.StartCampaign(campaign_pb2.StartCampaignRequest(id=campaign.id))
        breakers.ForceOpen(breaker_pb2.ForceOpenRequest(dependency="perplexity", reason="incident"))

        # Followed, logged and counted by both...
        for process in observing:
            eventually_sync(lambda p=process: '"breaker_observed"' in p.output() and '"forced_open"' in p.output())
        for port in (job_metrics, campaign_metrics):
            assert metric_line(port, 'breaker_subscriber_state_changes_total{dependency="perplexity",state="forced_open"}').endswith(" 1.0")
            assert metric_line(port, "breaker_subscriber_auto_pause ").endswith(" 0.0")
        # ... and no record touched.
        assert jobs.GetJob(job_pb2.GetJobRequest(id=job.id)).job.status == job_pb2.JOB_STATUS_PENDING
        assert campaigns.GetCampaign(campaign_pb2.GetCampaignRequest(id=campaign.id)).campaign.status == campaign_pb2.CAMPAIGN_STATUS_RUNNING

        for process in observing:
            assert process.terminate() == 0
        start("on")
        eventually_sync(lambda: jobs.GetJob(job_pb2.GetJobRequest(id=job.id)).job.status == job_pb2.JOB_STATUS_PAUSED, 10)
        eventually_sync(lambda: campaigns.GetCampaign(campaign_pb2.GetCampaignRequest(id=campaign.id)).campaign.status
                 == campaign_pb2.CAMPAIGN_STATUS_PAUSED, 10)
