"""job_svc's settings from the environment, validated at start-up.

Storage:  JOB_DATABASE_URL (postgresql://... or sqlite:///path; default sqlite:///var/job.db).
Breakers: BREAKER_TARGET (breaker_svc address, default 127.0.0.1:50051),
          JOB_BREAKER_STALE_AFTER_S (breaker stream silence reported as stale, default 30),
          JOB_AUTO_PAUSE (on; off only observes breaker changes: services/observer.py).
Queue:    JOB_RETRY_BASE_S / JOB_RETRY_MAX_S (retry backoff: base * 2^(attempt-1), capped;
          defaults 1 and 300), JOB_MAX_PAYLOAD_BYTES (payload cap as JSON, default 65536),
          JOB_SWEEP_INTERVAL_S (how often expired leases are returned to the queue, default 1),
          JOB_MAX_LEASE_EXPIRATIONS (a job whose lease expired this often fails, default 3),
          JOB_CLAIM_RECHECK_S (a waiting claim claims again after this long even if nothing
          woke it: the safety net under LISTEN/NOTIFY, default 2),
          JOB_RETENTION_S (completed and cancelled jobs older than this are deleted, default
          604800 = 7 days; 0 keeps them for ever), JOB_RETENTION_BATCH (rows per delete, 1000).
Outcomes: JOB_OUTBOX_BATCH (outcomes sent to breaker_svc per call, default 200),
          JOB_OUTBOX_RETRY_MAX_S (cap of the retry backoff while breaker_svc is down, default 10),
          JOB_OUTBOX_LINGER_S (the least time between two batches: outcomes written sooner
          after the last one wait and share the next batch, default 0.02).
The server itself: JOB_HOST, JOB_PORT (50053), JOB_METRICS_PORT, JOB_HEALTH_PORT, ADMIN_TOKEN,
SERVICE_TOKEN (also sent to breaker_svc), TLS_*, SHUTDOWN_GRACE_S, LOG_LEVEL (services.config.ServerSettings).
"""

from dataclasses import dataclass

from job_svc.domain import QueuePolicy, RetryPolicy
from services.config import ServerSettings, env_bool, env_float, env_int, env_str

DEFAULT_PORT = 50053


@dataclass(frozen=True)
class JobSettings:
    server: ServerSettings
    database_url: str
    breaker_target: str
    breaker_stale_after_s: float
    retry_policy: RetryPolicy
    max_payload_bytes: int
    sweep_interval_s: float
    outbox_batch: int
    outbox_retry_max_s: float
    outbox_linger_s: float = 0.02
    auto_pause: bool = True
    queue_policy: QueuePolicy = QueuePolicy()

    @classmethod
    def from_env(cls) -> "JobSettings":
        return cls(
            server=ServerSettings.from_env("JOB", DEFAULT_PORT),
            database_url=env_str("JOB_DATABASE_URL", "sqlite:///var/job.db"),
            breaker_target=env_str("BREAKER_TARGET", "127.0.0.1:50051"),
            breaker_stale_after_s=env_float("JOB_BREAKER_STALE_AFTER_S", 30.0, minimum=0.1, maximum=86400.0),
            retry_policy=RetryPolicy(
                base_s=env_float("JOB_RETRY_BASE_S", 1.0, minimum=0.0, maximum=3600.0),
                max_s=env_float("JOB_RETRY_MAX_S", 300.0, minimum=0.0, maximum=86400.0),
            ),
            max_payload_bytes=env_int("JOB_MAX_PAYLOAD_BYTES", 65536, minimum=2, maximum=16 * 1024 * 1024),
            sweep_interval_s=env_float("JOB_SWEEP_INTERVAL_S", 1.0, minimum=0.05, maximum=3600.0),
            outbox_batch=env_int("JOB_OUTBOX_BATCH", 200, minimum=1, maximum=10_000),
            outbox_retry_max_s=env_float("JOB_OUTBOX_RETRY_MAX_S", 10.0, minimum=0.1, maximum=3600.0),
            outbox_linger_s=env_float("JOB_OUTBOX_LINGER_S", 0.02, minimum=0.0, maximum=5.0),
            auto_pause=env_bool("JOB_AUTO_PAUSE", True),
            queue_policy=QueuePolicy(
                max_lease_expirations=env_int("JOB_MAX_LEASE_EXPIRATIONS", 3, minimum=1, maximum=1000),
                claim_recheck_s=env_float("JOB_CLAIM_RECHECK_S", 2.0, minimum=0.05, maximum=60.0),
                retention_s=env_float("JOB_RETENTION_S", 604800.0, minimum=0.0, maximum=10 * 365 * 86400.0),
                retention_batch=env_int("JOB_RETENTION_BATCH", 1000, minimum=1, maximum=100_000),
            ),
        )
