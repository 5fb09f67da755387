"""The clients our users use, against the real processes: grpcurl (through reflection, with no
proto files at hand) and `buf curl`. Also SIGTERM: streams end cleanly and the process exits 0."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from breaker.v1 import breaker_pb2, breaker_pb2_grpc

from tests.support.processes import ServiceProcess, free_port, launch_stack

REPO = Path(__file__).resolve().parents[2]
GRPCURL = Path(sys.executable).parent / "grpcurl"
BUF = REPO / "node_modules" / ".bin" / "buf"


@dataclass(frozen=True)
class Service:
    module: str
    port_env: str
    full_name: str
    env: tuple[tuple[str, str], ...]
    call: str
    body: dict
    expected_key: str


SERVICES = [
    Service("breaker_svc", "BREAKER_PORT", "breaker.v1.BreakerService", (("BREAKER_STORE", "memory"),),
            "RecordOutcome", {"dependency": "openai", "result": "CALL_RESULT_FAILURE", "duration": "0.5s"}, "breaker"),
    Service("job_svc", "JOB_PORT", "job.v1.JobService", (("BREAKER_TARGET", "127.0.0.1:1"),),
            "CreateJob", {"jobType": "enrich", "dependencies": ["perplexity"], "payload": {"lead": 7}}, "job"),
    Service("campaign_svc", "CAMPAIGN_PORT", "campaign.v1.CampaignService",
            (("BREAKER_TARGET", "127.0.0.1:1"), ("JOB_TARGET", "127.0.0.1:1")),
            "CreateCampaign", {"name": "Q4", "dependencies": ["apollo", "openai"]}, "campaign"),
]


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(GRPCURL), "-plaintext", *args], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module", params=SERVICES, ids=lambda s: s.module)
def running(request, tmp_path_factory):
    """One process per service, shared by this module's tests (they only read or create)."""
    service: Service = request.param
    folder = tmp_path_factory.mktemp(service.module)
    port = free_port()
    env = {
        **dict(service.env),
        service.port_env: str(port),
        "JOB_DATABASE_URL": f"sqlite:///{folder / 'job.db'}",
        "CAMPAIGN_DATABASE_URL": f"sqlite:///{folder / 'campaign.db'}",
    }
    process = ServiceProcess(service.module, port, env, folder).start()
    yield service, process
    process.stop()


def test_grpcurl_lists_describes_calls_and_health_checks_through_reflection(running) -> None:
    service, process = running

    listed = grpcurl(process.address, "list")
    assert listed.returncode == 0, listed.stderr
    assert {service.full_name, "grpc.health.v1.Health"} <= set(listed.stdout.split())

    described = grpcurl(process.address, "describe", service.full_name)
    assert described.returncode == 0, described.stderr
    assert f"rpc {service.call}" in described.stdout

    called = grpcurl("-d", json.dumps(service.body), process.address, f"{service.full_name}/{service.call}")
    assert called.returncode == 0, called.stderr
    assert service.expected_key in json.loads(called.stdout)

    health = grpcurl("-d", json.dumps({"service": ""}), process.address, "grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}


def test_a_subscriber_reports_stale_breaker_states_in_its_service_health(running) -> None:
    service, process = running
    # job_svc and campaign_svc run here with no breaker_svc to hear from: their breaker states
    # are stale, which their own service's health reports; breaker_svc has none to report.
    expected = "SERVING" if service.module == "breaker_svc" else "NOT_SERVING"
    deadline = time.monotonic() + 10
    while True:
        health = grpcurl("-d", json.dumps({"service": service.full_name}), process.address, "grpc.health.v1.Health/Check")
        status = json.loads(health.stdout or "{}").get("status")
        if status == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == expected, health.stderr


def test_grpcurl_sees_bad_input_as_invalid_argument_with_a_clear_message(running) -> None:
    service, process = running
    body = {**service.body, "dependencies": ["Not A Name"]} if "dependencies" in service.body else {**service.body, "dependency": "Not A Name"}
    called = grpcurl("-d", json.dumps(body), process.address, f"{service.full_name}/{service.call}")
    assert called.returncode != 0
    assert "Code: InvalidArgument" in called.stderr
    assert "malformed" in called.stderr


def test_the_readmes_configure_command_works_verbatim(service_process) -> None:
    process = service_process("breaker_svc", {"BREAKER_STORE": "memory"}, port_env="BREAKER_PORT")
    body = {"dependency": "openai", "config": {"failureRateThreshold": 30, "minimumCalls": 20},
            "updateMask": {"paths": ["failure_rate_threshold", "minimum_calls"]}}
    assert json.dumps(body).replace(" ", "") in (REPO / "README.md").read_text().replace(" ", "")
    called = grpcurl("-d", json.dumps(body), process.address, "breaker.v1.BreakerService/ConfigureBreaker")
    assert called.returncode == 0, called.stderr
    config = json.loads(called.stdout)["breaker"]["config"]
    assert (config["failure_rate_threshold"], config["minimum_calls"]) == (30, 20)


def test_buf_curl_calls_through_reflection(running) -> None:
    service, process = running
    result = subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--data", json.dumps(service.body),
         f"http://{process.address}/{service.full_name}/{service.call}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert service.expected_key in json.loads(result.stdout)


def test_sigterm_ends_watch_streams_cleanly_and_exits_zero(service_process) -> None:
    process = service_process("breaker_svc", {"BREAKER_STORE": "memory", "BREAKER_HEARTBEAT_S": "0.2"}, port_env="BREAKER_PORT")
    with grpc.insecure_channel(process.address) as channel:
        stream = breaker_pb2_grpc.BreakerServiceStub(channel).WatchTransitions(breaker_pb2.WatchTransitionsRequest())
        assert next(stream).HasField("snapshot")
        assert process.terminate() == 0
        # The stream ends with OK (the server ended it), not with a dropped connection.
        remaining = list(stream)
        assert all(m.HasField("heartbeat") or m.HasField("transition") for m in remaining)
        assert stream.code() == grpc.StatusCode.OK
    assert "server_stopped" in process.output()


def readme_grpcurl_session() -> list[str]:
    """The README's grpcurl block as commands (continuation lines joined, comments left out)."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Using it with grpcurl", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    commands, current = [], ""
    for line in block.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\") if line.endswith("\\") else line
        if not line.endswith("\\"):
            commands.append(current)
            current = ""
    return commands


def test_the_readmes_grpcurl_session_runs_as_written_against_a_fresh_stack_and_ctrl_c_stops_it_with_0(tmp_path: Path) -> None:
    """`make run`, the README's session in a second terminal, then Ctrl-C: SIGINT to the whole
    foreground process group, which must end with 0 (not make's 'Error 241': a service killed by
    a second signal while it exits)."""
    without_tokens = {k: v for k, v in os.environ.items() if k not in ("ADMIN_TOKEN", "SERVICE_TOKEN")}
    launched = launch_stack(tmp_path, without_tokens, process_group=0)
    stack, ports, env = launched.process, launched.ports, launched.env
    try:
        _wait_until_fresh(f"127.0.0.1:{ports['CAMPAIGN_PORT']}", "campaign.v1.CampaignService")
        # As a person types them: a moment apart (job_svc hears of a breaker change in milliseconds).
        script = "\n".join(f"{command}\nsleep 0.2" for command in readme_grpcurl_session())
        for default, port_env in (("50051", "BREAKER_PORT"), ("50052", "CAMPAIGN_PORT"), ("50053", "JOB_PORT")):
            script = script.replace(f"localhost:{default}", f"localhost:{ports[port_env]}")
        session = subprocess.run(["bash", "-e", "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    finally:
        os.killpg(stack.pid, signal.SIGINT)
        stopped = stack.wait(30)
    assert session.returncode == 0, session.stdout + session.stderr
    assert stopped == 0
    assert launched.output().count("server_stopped") == 3
    out = session.stdout
    assert out.count('"status": "JOB_STATUS_PROCESSING"') == 2  # the first claim, and the claim after the reset
    assert "{}" in out  # the claim while perplexity's breaker is open
    assert '"blocked_dependencies": [\n    "perplexity"\n  ]' in out
    assert '"status": "CAMPAIGN_STATUS_RUNNING"' in out
    assert '"snapshot"' in out and '"epoch"' in out


def _wait_until_fresh(address: str, service: str) -> None:
    """campaign_svc refuses starts until it has heard from breaker_svc (a second at most)."""
    deadline = time.monotonic() + 20
    while True:
        health = grpcurl("-d", json.dumps({"service": service}), address, "grpc.health.v1.Health/Check")
        if json.loads(health.stdout or "{}").get("status") == "SERVING":
            return
        assert time.monotonic() < deadline, health.stderr
        time.sleep(0.2)
