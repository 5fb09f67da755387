"""job_svc's Prometheus metrics (served on JOB_METRICS_PORT when set). Gauges are refreshed from
the database (the truth several replicas share) by the housekeeping loop; counters count what
this replica did.

- job_jobs{status}: jobs per status.
- job_queue_depth{dependency}: pending jobs due now that need the dependency.
- job_queue_oldest_age_seconds{dependency}: how long the oldest of them has been due.
- job_outcome_outbox_backlog: call outcomes not yet forwarded to breaker_svc.
- job_next_claim_failures_total: claims of FinishJobs' `next_claim` that failed after the
  finishes were applied (the call answered the finishes with no claimed jobs; see the log).
- job_claimed_total, job_expired_leases_total, job_outcomes_forwarded_total,
  job_outcomes_set_aside_total (outcomes the forwarder gave up on, see job_svc.forwarder).
- job_paused_total{hold}, job_resumed_total{hold}: jobs paused and resumed, by kind of hold.
- job_run_seconds{job_type, outcome}: a histogram of the time from a job's claim to its finish
  (CompleteJob, FailJob, FinishJobs), observed by the replica that applied the finish. `outcome`
  is `completed`, `failed` (no attempt left: the job failed for good) or `retried` (back in the
  queue, pending or paused by a hold). A lease that expires is not a finish and is not observed
  (job_expired_leases_total counts those), nor is a cancelled job, nor a job claimed before
  migration 0008 (it has no claim time).
"""

from collections.abc import Iterable, Mapping
from datetime import datetime

import prometheus_client

from job_svc.domain import JobStatus

JOBS = prometheus_client.Gauge("job_jobs", "Jobs per status.", ["status"])
QUEUE_DEPTH = prometheus_client.Gauge("job_queue_depth", "Pending jobs due now, by dependency.", ["dependency"])
QUEUE_OLDEST_AGE = prometheus_client.Gauge(
    "job_queue_oldest_age_seconds", "How long the oldest pending job due now has waited, by dependency.", ["dependency"]
)
OUTCOME_OUTBOX_BACKLOG = prometheus_client.Gauge(
    "job_outcome_outbox_backlog", "Call outcomes written but not yet forwarded to breaker_svc."
)
CLAIMS = prometheus_client.Counter("job_claimed", "Jobs leased to workers.")
NEXT_CLAIM_FAILURES = prometheus_client.Counter(
    "job_next_claim_failures", "FinishJobs' next claims that failed after the finishes were applied."
)
EXPIRED_LEASES = prometheus_client.Counter("job_expired_leases", "Leases that ended without a result.")
PAUSED = prometheus_client.Counter("job_paused", "Jobs paused, by kind of hold.", ["hold"])
RESUMED = prometheus_client.Counter("job_resumed", "Paused jobs made pending again, by kind of hold.", ["hold"])
OUTCOMES_FORWARDED = prometheus_client.Counter("job_outcomes_forwarded", "Call outcomes delivered to breaker_svc.")
OUTCOMES_SET_ASIDE = prometheus_client.Counter(
    "job_outcomes_set_aside", "Call outcomes set aside after bounded retries (kept in breaker_outbox, never sent)."
)
# job_run_seconds' outcomes, and a finished run: (job type, outcome, claim time).
RUN_COMPLETED, RUN_FAILED, RUN_RETRIED = "completed", "failed", "retried"
Run = tuple[str, str, datetime | None]
RUN_TIME = prometheus_client.Histogram(
    "job_run_seconds", "Time from a job's claim to its finish, by job type and outcome.", ["job_type", "outcome"],
    # From a quick API call to an hour-long job.
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)

_queued_dependencies: set[str] = set()  # dependencies with queue series, zeroed when they empty


def observe_database(
    counts: Mapping[JobStatus, int], due: Mapping[str, tuple[int, datetime]], outbox_backlog: int, now: datetime
) -> None:
    for status in JobStatus:
        JOBS.labels(status.value).set(counts.get(status, 0))
    for dependency in _queued_dependencies - due.keys():
        QUEUE_DEPTH.labels(dependency).set(0)
        QUEUE_OLDEST_AGE.labels(dependency).set(0)
    for dependency, (count, due_since) in due.items():
        QUEUE_DEPTH.labels(dependency).set(count)
        QUEUE_OLDEST_AGE.labels(dependency).set(max(0.0, (now - due_since).total_seconds()))
    _queued_dependencies.update(due)
    OUTCOME_OUTBOX_BACKLOG.set(outbox_backlog)


def observe_runs(runs: Iterable[Run], now: datetime) -> None:
    """Observes each finished run's time; one without a claim time is skipped.
    Clamped at 0: another replica, whose clock may run ahead, may have stamped the claim."""
    for job_type, outcome, claimed_at in runs:
        if claimed_at is not None:
            RUN_TIME.labels(job_type, outcome).observe(max(0.0, (now - claimed_at).total_seconds()))
