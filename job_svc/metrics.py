"""job_svc's Prometheus metrics (served on JOB_METRICS_PORT when set). Gauges are refreshed from
the database (the truth several replicas share) by the housekeeping loop; counters count what
this replica did.

- job_jobs{status}: jobs per status.
- job_queue_depth{dependency}: pending jobs due now that need the dependency.
- job_queue_oldest_age_seconds{dependency}: how long the oldest of them has been due.
- job_outcome_outbox_backlog: call outcomes not yet forwarded to breaker_svc.
- job_claimed_total, job_expired_leases_total, job_outcomes_forwarded_total,
  job_outcomes_set_aside_total (outcomes the forwarder gave up on, see job_svc.forwarder).
- job_paused_total{hold}, job_resumed_total{hold}: jobs paused and resumed, by kind of hold.
"""

from collections.abc import Mapping
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
EXPIRED_LEASES = prometheus_client.Counter("job_expired_leases", "Leases that ended without a result.")
PAUSED = prometheus_client.Counter("job_paused", "Jobs paused, by kind of hold.", ["hold"])
RESUMED = prometheus_client.Counter("job_resumed", "Paused jobs made pending again, by kind of hold.", ["hold"])
OUTCOMES_FORWARDED = prometheus_client.Counter("job_outcomes_forwarded", "Call outcomes delivered to breaker_svc.")
OUTCOMES_SET_ASIDE = prometheus_client.Counter(
    "job_outcomes_set_aside", "Call outcomes set aside after bounded retries (kept in breaker_outbox, never sent)."
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
