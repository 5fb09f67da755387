"""One request id, and with tracing on one trace, across the hops between the services:
campaign_svc -> job_svc (job commands), job_svc -> breaker_svc (forwarded outcomes), and the
subscribers' watch streams. Read from the peers' access logs and console-exported spans."""

import json
from pathlib import Path

import grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc

from tests.support.polling import eventually_sync
from tests.support.processes import free_port

TRACING = {"OTEL_TRACES_EXPORTER": "console"}


def json_lines(output: str) -> list[dict]:
    """The access-log lines (one JSON object a line)."""
    return [json.loads(line) for line in output.splitlines() if line.startswith('{"')]


def spans(output: str) -> list[dict]:
    """The spans the console exporter printed (indented JSON objects)."""
    found, block = [], None
    for line in output.splitlines():
        if line == "{":
            block = [line]
        elif block is not None:
            block.append(line)
            if line == "}":
                found.append(json.loads("\n".join(block)))
                block = None
    return found


def access_line(output: str, method: str) -> dict | None:
    return next((line for line in json_lines(output) if line.get("event") == "rpc" and line.get("method") == method), None)


def test_request_ids_and_traces_follow_every_hop(service_process, tmp_path: Path) -> None:
    breaker = service_process("breaker_svc", {"BREAKER_STORE": "memory", **TRACING}, port_env="BREAKER_PORT")
    job_port = free_port()
    jobs_process = service_process(
        "job_svc", {"JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}", "BREAKER_TARGET": breaker.address, **TRACING},
        port_env="JOB_PORT", port=job_port,
    )
    campaigns_process = service_process(
        "campaign_svc", {"CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}", "BREAKER_TARGET": breaker.address,
                         "JOB_TARGET": jobs_process.address, **TRACING},
        port_env="CAMPAIGN_PORT",
    )
    with grpc.insecure_channel(jobs_process.address) as j, grpc.insecure_channel(campaigns_process.address) as c:
        jobs, campaigns = job_pb2_grpc.JobServiceStub(j), campaign_pb2_grpc.CampaignServiceStub(c)
        jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=["openai"]))
        claimed = jobs.ClaimJobs(job_pb2.ClaimJobsRequest(worker_id="w1", max_jobs=1)).jobs[0]
        jobs.CompleteJob(job_pb2.CompleteJobRequest(id=claimed.id, worker_id="w1"), metadata=[("x-request-id", "complete-lead-7")])

        campaign = campaigns.CreateCampaign(campaign_pb2.CreateCampaignRequest(name="Q4", dependencies=["apollo"])).campaign
        eventually_sync(lambda: not campaigns.GetPauseStatus(campaign_pb2.GetPauseStatusRequest()).breaker_state_stale)
        campaigns.StartCampaign(campaign_pb2.StartCampaignRequest(id=campaign.id))
        campaigns.PauseCampaign(campaign_pb2.PauseCampaignRequest(id=campaign.id, reason="by hand"),
                                metadata=[("x-request-id", "pause-q4")])

    # job_svc -> breaker_svc: the forwarded outcome carries the completing call's id.
    forwarded = eventually_sync(lambda: access_line(breaker.output(), "/breaker.v1.BreakerService/RecordOutcomeBatches"))
    assert forwarded["request_id"] == "complete-lead-7"
    # campaign_svc -> job_svc: the job command carries the pausing call's id.
    paused = eventually_sync(lambda: access_line(jobs_process.output(), "/job.v1.JobService/PauseJobs"))
    assert paused["request_id"] == "pause-q4"

    # With tracing on, the forwarded call is one trace across the two processes.
    server_span = eventually_sync(lambda: next((s for s in spans(breaker.output()) if s["name"] == "/breaker.v1.BreakerService/RecordOutcomeBatches"), None))
    client_span = eventually_sync(lambda: next((s for s in spans(jobs_process.output()) if s["name"] == "/breaker.v1.BreakerService/RecordOutcomeBatches"), None))
    assert server_span["kind"] == "SpanKind.SERVER" and client_span["kind"] == "SpanKind.CLIENT"
    assert server_span["context"]["trace_id"] == client_span["context"]["trace_id"]
    assert server_span["parent_id"] == client_span["context"]["span_id"]
    assert server_span["resource"]["attributes"]["service.name"] == "breaker_svc"

    # Watch streams: each subscriber names its stream, and breaker_svc logs that name when the
    # stream ends.
    stream_ids = {line["stream_request_id"] for line in json_lines(jobs_process.output()) if line.get("event") == "breaker_stream_connecting"}
    assert jobs_process.terminate() == 0
    watch_lines = eventually_sync(lambda: [line for line in json_lines(breaker.output())
                                    if line.get("event") == "rpc" and line.get("method") == "/breaker.v1.BreakerService/WatchTransitions"])
    assert stream_ids & {line["request_id"] for line in watch_lines}
