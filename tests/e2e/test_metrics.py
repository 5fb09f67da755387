"""Prometheus metrics as an operator scrapes them from the three running services, after some
traffic; the Grafana dashboard in deploy/ asks only for metrics found in those scrapes. Job run
times as job_svc observes them, on PostgreSQL and SQLite."""

import json
import re
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import REPO, ServiceProcess, free_port

Samples = dict[str, list[tuple[dict[str, str], float]]]
DASHBOARD = REPO / "deploy" / "grafana" / "graceful-pause.json"


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    for sample_labels, sample_value in samples.get(name, []):
        if labels.items() <= sample_labels.items():
            return sample_value
    return None


@pytest.fixture(scope="module")
def scrapes(tmp_path_factory) -> Iterator[dict[str, Samples]]:
    """The three services wired together, with traffic through every kind of call, scraped once
    every series the tests look for exists."""
    folder = tmp_path_factory.mktemp("metrics")
    ports = {name: free_port() for name in ("breaker", "job", "campaign")}
    metrics_ports = {name: free_port() for name in ports}
    breaker_target, job_target = f"127.0.0.1:{ports['breaker']}", f"127.0.0.1:{ports['job']}"
    processes = [
        ServiceProcess("breaker_svc", ports["breaker"], {
            "BREAKER_STORE": "memory", "BREAKER_PORT": str(ports["breaker"]),
            "BREAKER_METRICS_PORT": str(metrics_ports["breaker"]),
            "BREAKER_DEFAULT_MINIMUM_CALLS": "2", "BREAKER_DEFAULT_WINDOW_SIZE": "10", "BREAKER_DEFAULT_OPEN_WAIT_S": "300",
        }, folder),
        ServiceProcess("job_svc", ports["job"], {
            "JOB_PORT": str(ports["job"]), "JOB_METRICS_PORT": str(metrics_ports["job"]),
            "JOB_DATABASE_URL": f"sqlite:///{folder / 'job.db'}", "BREAKER_TARGET": breaker_target,
            "JOB_SWEEP_INTERVAL_S": "0.1",
        }, folder),
        ServiceProcess("campaign_svc", ports["campaign"], {
            "CAMPAIGN_PORT": str(ports["campaign"]), "CAMPAIGN_METRICS_PORT": str(metrics_ports["campaign"]),
            "CAMPAIGN_DATABASE_URL": f"sqlite:///{folder / 'campaign.db'}", "BREAKER_TARGET": breaker_target,
            "JOB_TARGET": job_target, "CAMPAIGN_METRICS_REFRESH_S": "0.2",
        }, folder),
    ]
    try:
        for process in processes:
            process.start()
        _traffic(breaker_target, job_target, f"127.0.0.1:{ports['campaign']}")
        deadline = time.monotonic() + 20
        while True:
            result = {name: scrape(port) for name, port in metrics_ports.items()}
            if _complete(result) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        yield result
    finally:
        for process in processes:
            process.stop()


def _traffic(breaker_target: str, job_target: str, campaign_target: str) -> None:
    with grpc.insecure_channel(breaker_target) as b, grpc.insecure_channel(job_target) as j, \
            grpc.insecure_channel(campaign_target) as c:
        breakers = breaker_pb2_grpc.BreakerServiceStub(b)
        jobs, campaigns = job_pb2_grpc.JobServiceStub(j), campaign_pb2_grpc.CampaignServiceStub(c)
        # apollo records calls but never changes state; openai opens.
        breakers.RecordOutcome(breaker_pb2.RecordOutcomeRequest(dependency="apollo", result=breaker_pb2.CALL_RESULT_SUCCESS))
        failure = breaker_pb2.RecordOutcomesRequest(dependency="openai", result=breaker_pb2.CALL_RESULT_FAILURE)
        breakers.RecordOutcomes(iter([failure, failure]))
        stream = breakers.WatchTransitions(breaker_pb2.WatchTransitionsRequest())
        assert next(stream).HasField("snapshot")
        stream.cancel()
        with pytest.raises(grpc.RpcError) as refused:
            breakers.GetBreaker(breaker_pb2.GetBreakerRequest(dependency="Not A Name"))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=["apollo"]))
        jobs.CreateJob(job_pb2.CreateJobRequest(job_type="enrich", dependencies=["openai"]))
        _run_a_job(jobs)
        campaign = campaigns.CreateCampaign(campaign_pb2.CreateCampaignRequest(name="Q4", dependencies=["apollo"])).campaign
        _start(campaigns, campaign.id)
        campaigns.PauseCampaign(campaign_pb2.PauseCampaignRequest(id=campaign.id, reason="by hand"))


def _run_a_job(jobs: job_pb2_grpc.JobServiceStub) -> None:
    """Claims and completes a job of its own dependency (its outcome recorded by the worker, so
    breaker_svc hears nothing): job_run_seconds gets a series."""
    job = jobs.CreateJob(job_pb2.CreateJobRequest(job_type="score", dependencies=["clearbit"])).job
    jobs.ClaimJobs(job_pb2.ClaimJobsRequest(worker_id="w", dependencies=["clearbit"], max_jobs=1))
    done = job_pb2.JobFinish(id=job.id, completion=job_pb2.JobCompletion(), outcomes_recorded=True)
    jobs.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w", finishes=[done]))


def _start(campaigns: campaign_pb2_grpc.CampaignServiceStub, campaign_id: str) -> None:
    """Starts the campaign once campaign_svc has heard from breaker_svc (UNAVAILABLE until then)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            campaigns.StartCampaign(campaign_pb2.StartCampaignRequest(id=campaign_id))
            return
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _complete(result: dict[str, Samples]) -> bool:
    job, campaign = result["job"], result["campaign"]
    return (
        value(job, "breaker_subscriber_revision_applied") == 1
        and value(job, "breaker_subscriber_stale") == value(campaign, "breaker_subscriber_stale") == 0
        and value(job, "job_queue_depth", dependency="apollo") == 1
        and value(campaign, "campaign_held", hold="manual") == 1
        and value(campaign, "breaker_subscriber_state_changes_total", dependency="openai", state="open") == 1
    )


def test_grpc_server_metrics_have_the_standard_names_and_labels(scrapes) -> None:
    breaker = scrapes["breaker"]
    unary = {"grpc_type": "UNARY", "grpc_service": "breaker.v1.BreakerService", "grpc_method": "RecordOutcome"}
    assert value(breaker, "grpc_server_started_total", **unary) == 1
    assert value(breaker, "grpc_server_handled_total", **unary, grpc_code="OK") == 1
    assert value(breaker, "grpc_server_msg_received_total", **unary) == 1
    assert value(breaker, "grpc_server_msg_sent_total", **unary) == 1
    assert value(breaker, "grpc_server_handling_seconds_count", **unary) == 1
    assert value(breaker, "grpc_server_handled_total", grpc_method="GetBreaker", grpc_code="INVALID_ARGUMENT") == 1

    client_stream = {"grpc_type": "CLIENT_STREAM", "grpc_method": "RecordOutcomes"}
    assert value(breaker, "grpc_server_msg_received_total", **client_stream) == 2
    assert value(breaker, "grpc_server_msg_sent_total", **client_stream) == 1

    watch = {"grpc_type": "SERVER_STREAM", "grpc_method": "WatchTransitions"}
    assert value(breaker, "grpc_server_started_total", **watch) >= 3  # ours, job_svc's, campaign_svc's
    assert value(breaker, "grpc_server_msg_sent_total", **watch) >= 3
    # Long watch streams stay out of the latency histogram: unary calls only.
    assert {labels["grpc_type"] for labels, _ in breaker["grpc_server_handling_seconds_count"]} == {"UNARY"}
    assert value(scrapes["job"], "grpc_server_handled_total", grpc_service="job.v1.JobService", grpc_method="CreateJob") == 3  # _traffic's


def test_breaker_svc_exports_states_transitions_and_calls(scrapes) -> None:
    breaker = scrapes["breaker"]
    # A breaker that records calls but never changed state has its series too.
    assert value(breaker, "breaker_state", dependency="apollo", state="closed") == 1
    assert value(breaker, "breaker_state", dependency="openai", state="open") == 1
    assert value(breaker, "breaker_state", dependency="openai", state="closed") == 0
    assert value(breaker, "breaker_transitions_total", dependency="openai", from_state="closed", to_state="open") == 1
    assert value(breaker, "breaker_calls_total", dependency="openai", result="failure") == 2
    assert value(breaker, "breaker_watch_subscribers") == 2  # job_svc and campaign_svc


def test_the_subscribers_export_their_lag_staleness_queues_and_outboxes(scrapes) -> None:
    job, campaign = scrapes["job"], scrapes["campaign"]
    for subscriber in (job, campaign):
        assert value(subscriber, "breaker_subscriber_revision_seen") == 1
        assert value(subscriber, "breaker_subscriber_lag_revisions") == 0
        assert value(subscriber, "breaker_subscriber_stale") == 0
        assert value(subscriber, "breaker_subscriber_auto_pause") == 1
    assert value(job, "job_jobs", status="paused") == 1
    assert value(job, "job_jobs", status="pending") == 1
    assert value(job, "job_queue_oldest_age_seconds", dependency="apollo") >= 0
    assert value(job, "job_paused_total", hold="breaker") is not None  # paused on creation or by the opening
    assert value(job, "job_outcome_outbox_backlog") == 0
    assert value(job, "job_run_seconds_count", job_type="score", outcome="completed") == 1
    assert value(campaign, "campaign_campaigns", status="paused") == 1
    assert value(campaign, "campaign_job_command_outbox_backlog") is not None


def dashboard_metric_names() -> set[str]:
    """Every metric name the dashboard's queries mention (PromQL words that look like ours, less
    strings and the labels of `by (...)`, such as job_type)."""
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert expressions, "the dashboard has no queries"
    bare = [re.sub(r'"[^"]*"|\b(by|without)\s*\([^)]*\)', "", expr) for expr in expressions]
    words = {word for expr in bare for word in re.findall(r"[a-z_][a-z0-9_]*", expr)}
    return {w for w in words if w.startswith(("grpc_server_", "breaker_", "job_", "campaign_"))}


def test_every_metric_the_dashboard_asks_for_is_exported(scrapes) -> None:
    exported = {name for samples in scrapes.values() for name in samples}
    wanted = dashboard_metric_names()
    assert len(wanted) >= 15
    assert wanted - exported == set()


def test_every_metric_the_alert_rules_ask_for_is_exported(scrapes) -> None:
    exported = {name for samples in scrapes.values() for name in samples}
    rules = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    expressions = re.findall(r"expr: (.+)", rules)
    words = {w for expr in expressions for w in re.findall(r"[a-z_][a-z0-9_]*", re.sub(r'"[^"]*"', "", expr))}
    wanted = {w for w in words if w.startswith(("grpc_server_", "breaker_", "job_", "campaign_"))}
    assert wanted and wanted - exported == set()


def test_the_readmes_table_names_every_metric_the_services_export(scrapes) -> None:
    exported = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for samples in scrapes.values() for name in samples
        if name.startswith(("grpc_server_", "breaker_", "job_", "campaign_")) and not name.endswith("_created")
    }
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Metrics", 1)[1].split("\n\n")[2]
    documented = set(re.findall(r"`([a-z_]+)`", "\n".join(line.split("|")[1] for line in table.splitlines()[2:])))
    assert documented == exported


def test_job_run_time_is_observed_per_job_type_and_outcome(database_url: str, service_process) -> None:
    """Claims four jobs over gRPC and finishes them through each call that can: the run time of
    each finish shows up under its job type and outcome (`retried`: back in the queue)."""
    metrics_port = free_port()
    job_svc = service_process("job_svc", {
        "JOB_DATABASE_URL": database_url, "JOB_METRICS_PORT": str(metrics_port), "BREAKER_TARGET": "127.0.0.1:9",
    }, port_env="JOB_PORT")
    runs = {outcome: {"job_type": "score", "outcome": outcome} for outcome in ("completed", "failed", "retried")}
    assert all(value(scrape(metrics_port), "job_run_seconds_count", **labels) is None for labels in runs.values())
    with grpc.insecure_channel(job_svc.address) as channel:
        jobs = job_pb2_grpc.JobServiceStub(channel)
        last_try, *others = [
            jobs.CreateJob(job_pb2.CreateJobRequest(job_type="score", dependencies=["apollo"], max_attempts=attempts)).job.id
            for attempts in (1, 3, 3, 3)
        ]
        claimed = jobs.ClaimJobs(job_pb2.ClaimJobsRequest(worker_id="w", dependencies=["apollo"], max_jobs=4)).jobs
        assert len(claimed) == 4
        jobs.FailJob(job_pb2.FailJobRequest(id=last_try, worker_id="w", error="bad lead"))
        jobs.CompleteJob(job_pb2.CompleteJobRequest(id=others[0], worker_id="w"))
        finishes = [
            job_pb2.JobFinish(id=others[1], completion=job_pb2.JobCompletion()),
            job_pb2.JobFinish(id=others[2], failure=job_pb2.JobFailure(error="try again")),
        ]
        statuses = jobs.FinishJobs(job_pb2.FinishJobsRequest(worker_id="w", finishes=finishes)).results
        assert [r.status for r in statuses] == [job_pb2.JOB_STATUS_COMPLETED, job_pb2.JOB_STATUS_PENDING]
    samples = scrape(metrics_port)
    assert {outcome: value(samples, "job_run_seconds_count", **labels) for outcome, labels in runs.items()} == {
        "completed": 2, "failed": 1, "retried": 1,
    }
    assert value(samples, "job_run_seconds_bucket", **runs["completed"], le="+Inf") == 2
    assert 0 <= value(samples, "job_run_seconds_sum", **runs["completed"]) < 60
