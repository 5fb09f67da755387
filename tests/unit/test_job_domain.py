"""job_svc's domain rules: statuses, validation, retry backoff, lease and cancel checks."""

import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from job_svc.domain import (
    DEFAULT_MAX_ATTEMPTS,
    FINAL_STATUSES,
    MAX_ERROR_LENGTH,
    ClaimRequest,
    Hold,
    HoldKind,
    HoldSelector,
    Job,
    JobStatus,
    NewJob,
    RetryPolicy,
    check_cancellable,
    check_failed_dependency,
    check_lease,
    created_job,
    finished,
    new_job_ids,
    plan_failure,
    truncate_error,
)
from services.errors import FailedPrecondition, InvalidArgument

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAMPAIGN = "6f1c3f0e-8a51-4c3e-9b0e-2f3c1d4e5a6b"


def a_job(**changes: object) -> Job:
    job = Job(
        id="0b7e2f9c-3c1d-4e5a-8f6b-1a2b3c4d5e6f", campaign_id=None, job_type="enrich", dependencies=("apollo", "openai"),
        payload={}, status=JobStatus.PROCESSING, attempts=0, max_attempts=3, lease_owner="w1",
        lease_expires_at=NOW + timedelta(seconds=30), run_after=NOW, last_error="", holds=(), created_at=NOW, updated_at=NOW,
    )
    return replace(job, **changes)


def new_job(**fields: object) -> NewJob:
    values: dict = dict(request_id="", campaign_id="", job_type="enrich", dependencies=["openai"], payload={}, max_attempts=0, max_payload_bytes=100)
    values.update(fields)
    return NewJob.validated(**values)


class TestStatuses:
    def test_statuses_are_the_lowercase_words_of_the_spec(self) -> None:
        assert [s.value for s in JobStatus] == ["pending", "processing", "completed", "failed", "cancelled", "paused"]
        assert JobStatus("paused") is JobStatus.PAUSED and JobStatus.PAUSED == "paused"

    def test_hold_kinds_are_breaker_manual_and_campaign(self) -> None:
        assert [k.value for k in HoldKind] == ["breaker", "manual", "campaign"]

    def test_only_completed_failed_and_cancelled_are_final(self) -> None:
        assert FINAL_STATUSES == {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}

    @pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PAUSED, JobStatus.PROCESSING])
    def test_unfinished_jobs_may_be_cancelled(self, status: JobStatus) -> None:
        check_cancellable(a_job(status=status))

    @pytest.mark.parametrize("status", sorted(FINAL_STATUSES))
    def test_finished_jobs_may_not_be_cancelled_and_the_message_says_why(self, status: JobStatus) -> None:
        with pytest.raises(FailedPrecondition, match=f"already {status.value}"):
            check_cancellable(a_job(status=status))


class TestNewJob:
    def test_defaults_and_normalisation(self) -> None:
        job = new_job(dependencies=["openai", "apollo", "openai"], campaign_id=CAMPAIGN.upper())
        assert job.dependencies == ("apollo", "openai")
        assert job.max_attempts == DEFAULT_MAX_ATTEMPTS and job.request_id is None and job.campaign_id == CAMPAIGN

    @pytest.mark.parametrize(
        "fields, message",
        [
            ({"job_type": ""}, "job_type is required"),
            ({"job_type": "x" * 101}, "job_type must be at most 100"),
            ({"dependencies": []}, "at least one dependency"),
            ({"dependencies": ["OpenAI"]}, "malformed"),
            ({"dependencies": [f"d{i}" for i in range(21)]}, "at most 20"),
            ({"max_attempts": 101}, "max_attempts must be between 1 and 100"),
            ({"max_attempts": -1}, "max_attempts"),
            ({"campaign_id": "not-a-uuid"}, "campaign_id must be a UUID"),
            ({"request_id": "r" * 129}, "request_id must be at most 128"),
            ({"payload": {"text": "x" * 200}}, "payload must be at most 100 bytes"),
            ({"payload": {"text": "a\x00b"}}, "payload must not contain NUL"),
            ({"job_type": "en\x00rich"}, "job_type must not contain NUL"),
        ],
    )
    def test_bad_fields_are_invalid_argument_naming_the_field(self, fields: dict, message: str) -> None:
        with pytest.raises(InvalidArgument, match=message):
            new_job(**fields)

    def test_the_payload_is_encoded_once_as_compact_ascii_json_and_its_size_is_that_text(self) -> None:
        payload = {"lead": "Zoë", "scores": [1.0, None, True]}
        encoded = '{"lead":"Zo\\u00eb","scores":[1.0,null,true]}'
        assert new_job(payload=payload).payload_json == encoded
        with pytest.raises(InvalidArgument, match=f"^payload must be at most {len(encoded) - 1} bytes as JSON, got {len(encoded)}$"):
            new_job(payload=payload, max_payload_bytes=len(encoded) - 1)


class TestClaimRequest:
    def test_lease_defaults_to_thirty_seconds_and_empty_filters_mean_any(self) -> None:
        claim = ClaimRequest.validated(worker_id="w", dependencies=[], max_jobs=5, lease_s=None, job_type="")
        assert (claim.lease_s, claim.dependencies, claim.job_type) == (30.0, (), None)

    @pytest.mark.parametrize(
        "fields, message",
        [
            ({"worker_id": ""}, "worker_id is required"),
            ({"max_jobs": 0}, "max_jobs must be between 1 and 1000"),
            ({"max_jobs": 1001}, "max_jobs"),
            ({"lease_s": 0.5}, "lease_duration must be between 1s and 1h"),
            ({"lease_s": 3601.0}, "lease_duration"),
            ({"dependencies": ["Bad Name"]}, "malformed"),
        ],
    )
    def test_bad_claims_are_invalid_argument(self, fields: dict, message: str) -> None:
        values: dict = dict(worker_id="w", dependencies=[], max_jobs=1, lease_s=None, job_type="")
        values.update(fields)
        with pytest.raises(InvalidArgument, match=message):
            ClaimRequest.validated(**values)


class TestSelectors:
    def test_exactly_one_selector(self) -> None:
        for campaign_id, dependency in (("", ""), (CAMPAIGN, "openai")):
            with pytest.raises(InvalidArgument, match="exactly one"):
                HoldSelector.validated(campaign_id=campaign_id, dependency=dependency)

    def test_a_campaign_is_a_campaign_hold_and_a_dependency_a_manual_hold(self) -> None:
        campaign = HoldSelector.validated(campaign_id=CAMPAIGN, dependency="")
        manual = HoldSelector.validated(campaign_id="", dependency="openai")
        assert (campaign.kind, campaign.hold_dependency) == (HoldKind.CAMPAIGN, "")
        assert (manual.kind, manual.hold_dependency) == (HoldKind.MANUAL, "openai")


class TestFailures:
    policy = RetryPolicy(base_s=2.0, max_s=10.0)

    def test_backoff_doubles_up_to_the_cap(self) -> None:
        assert [self.policy.delay_s(n) for n in range(1, 6)] == [2.0, 4.0, 8.0, 10.0, 10.0]

    def test_the_jobs_own_failure_spends_an_attempt_and_retries_with_backoff(self) -> None:
        plan = plan_failure(a_job(attempts=1), None, NOW, self.policy)
        assert (plan.status, plan.attempts, plan.run_after) == (JobStatus.PENDING, 2, NOW + timedelta(seconds=4))

    def test_the_last_attempt_fails_the_job(self) -> None:
        plan = plan_failure(a_job(attempts=2), None, NOW, self.policy)
        assert (plan.status, plan.attempts) == (JobStatus.FAILED, 3)

    def test_a_providers_fault_spends_no_attempt_even_on_the_last_one(self) -> None:
        plan = plan_failure(a_job(attempts=2), "openai", NOW, self.policy)
        assert (plan.status, plan.attempts) == (JobStatus.PENDING, 2)

    def test_each_providers_fault_doubles_the_wait_up_to_the_cap(self) -> None:
        job, waits = a_job(), []
        for _ in range(5):
            plan = plan_failure(job, "openai", NOW, self.policy)
            waits.append((plan.run_after - NOW).total_seconds())
            job = replace(job, provider_failures=plan.provider_failures)
        assert waits == [2.0, 4.0, 8.0, 10.0, 10.0] and job.attempts == 0

    def test_the_failed_dependency_must_be_one_of_the_jobs(self) -> None:
        assert check_failed_dependency(a_job(), "openai") == "openai"
        assert check_failed_dependency(a_job(), "") is None
        with pytest.raises(InvalidArgument, match="not a dependency of job"):
            check_failed_dependency(a_job(), "perplexity")

    def test_only_the_lease_owner_of_a_processing_job_may_end_it_before_the_lease_ends(self) -> None:
        check_lease(a_job(), "w1", NOW)
        with pytest.raises(FailedPrecondition, match="another worker"):
            check_lease(a_job(), "w2", NOW)
        with pytest.raises(FailedPrecondition, match="is paused, not processing"):
            check_lease(a_job(status=JobStatus.PAUSED), "w1", NOW)
        with pytest.raises(FailedPrecondition, match="expired"):
            check_lease(a_job(), "w1", NOW + timedelta(seconds=31))

    def test_long_errors_are_cut_not_refused(self) -> None:
        assert len(truncate_error("e" * (MAX_ERROR_LENGTH + 50))) == MAX_ERROR_LENGTH
        assert truncate_error("short") == "short"


def test_the_pause_reason_names_every_hold() -> None:
    holds = (
        Hold(HoldKind.BREAKER, "openai", 7, "open", NOW),
        Hold(HoldKind.MANUAL, "apollo", 0, "quota", NOW),
        Hold(HoldKind.CAMPAIGN, "", 0, "paused by user", NOW),
    )
    reason = a_job(status=JobStatus.PAUSED, holds=holds).pause_reason
    assert reason == "breaker of openai is open (revision 7); apollo paused by an operator: quota; campaign paused: paused by user"


def test_a_finished_job_keeps_no_lease_and_no_hold() -> None:
    held = a_job(holds=(Hold(HoldKind.MANUAL, "openai", 0, "ops", NOW),))
    done = finished(held, JobStatus.COMPLETED, NOW + timedelta(seconds=1))
    assert (done.status, done.lease_owner, done.lease_expires_at, done.holds) == (JobStatus.COMPLETED, None, None, ())
    assert done.updated_at == NOW + timedelta(seconds=1) and done.attempts == held.attempts


def test_a_created_job_is_pending_and_due_at_once() -> None:
    job = created_job("0b7e2f9c-3c1d-4e5a-8f6b-1a2b3c4d5e6f", new_job(dependencies=["openai", "apollo"]), NOW)
    assert (job.status, job.attempts, job.run_after, job.created_at, job.holds) == (JobStatus.PENDING, 0, NOW, NOW, ())
    assert job.dependencies == ("apollo", "openai") and job.pause_reason == ""


def test_job_ids_are_uuid7s_ordered_by_creation_time() -> None:
    before_ms = time.time_ns() // 1_000_000
    first = new_job_ids(1000)
    time.sleep(0.002)
    second = new_job_ids(3)
    parsed = [uuid.UUID(job_id) for job_id in first + second]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    assert [str(u) for u in parsed] == first + second  # canonical text, as validate_uuid gives it back
    assert len(set(first + second)) == 1003
    assert before_ms <= parsed[0].int >> 80 <= time.time_ns() // 1_000_000
    assert max(first) < min(second)  # a later batch sorts after an earlier one, as text too
    assert new_job_ids(0) == []
