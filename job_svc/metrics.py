"""job_svc's Prometheus metrics (served on JOB_METRICS_PORT when set)."""

import prometheus_client

JOBS = prometheus_client.Gauge("job_svc_jobs", "Jobs per status (refreshed periodically).", ["status"])
CLAIMS = prometheus_client.Counter("job_svc_claimed_jobs_total", "Jobs leased to workers.")
EXPIRED_LEASES = prometheus_client.Counter("job_svc_expired_leases_total", "Leases that ended without a result.")
PAUSED = prometheus_client.Counter("job_svc_paused_jobs_total", "Pending jobs paused, by hold kind.", ["kind"])
RESUMED = prometheus_client.Counter("job_svc_resumed_jobs_total", "Paused jobs made pending again, by hold kind.", ["kind"])
OUTCOMES_FORWARDED = prometheus_client.Counter(
    "job_svc_outcomes_forwarded_total", "Call outcomes delivered to breaker_svc."
)
BREAKER_STALE = prometheus_client.Gauge(
    "job_svc_breaker_state_stale", "1 while the breaker stream has been silent longer than the staleness bound."
)
