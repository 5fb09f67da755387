"""The contracts: generated code matches the protos, and buf's STANDARD + COMMENTS lint passes."""

import subprocess
import sys
from pathlib import Path

from services import protogen

REPO = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh_against_the_protos() -> None:
    stale = protogen.stale_files()
    assert stale == [], f"gen/ is stale, run `make gen`: {stale}"


def test_buf_lint_passes_on_the_protos() -> None:
    buf = REPO / "node_modules" / ".bin" / "buf"
    result = subprocess.run([str(buf), "lint"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_the_names_its_callers_rely_on() -> None:
    from breaker.v1 import breaker_pb2
    from campaign.v1 import campaign_pb2
    from job.v1 import job_pb2

    expected = {
        breaker_pb2.DESCRIPTOR.services_by_name["BreakerService"]: {
            "RecordOutcome", "RecordOutcomes", "RecordOutcomeBatches", "Acquire", "GetBreaker", "ListBreakers", "ConfigureBreaker",
            "ForceOpen", "ForceClose", "ResetBreaker", "WatchTransitions",
        },
        job_pb2.DESCRIPTOR.services_by_name["JobService"]: {
            "CreateJob", "CreateJobs", "GetJob", "ListJobs", "CancelJob", "ClaimJobs", "CompleteJob", "FailJob",
            "FinishJobs", "RenewLeases", "RedriveJobs", "PauseJobs", "ResumeJobs", "GetQueueStatus",
        },
        campaign_pb2.DESCRIPTOR.services_by_name["CampaignService"]: {
            "CreateCampaign", "GetCampaign", "ListCampaigns", "StartCampaign", "PauseCampaign",
            "ResumeCampaign", "CompleteCampaign", "FailCampaign", "GetPauseStatus",
        },
    }
    for service, methods in expected.items():
        assert {m.name for m in service.methods} == methods, service.full_name


def test_hand_written_code_has_no_unused_imports_or_undefined_names() -> None:
    folders = ["services", "breaker_svc", "job_svc", "campaign_svc", "tests", "bench"]
    result = subprocess.run(
        [sys.executable, "-m", "pyflakes", *folders], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
