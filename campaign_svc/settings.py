"""campaign_svc's configuration, from environment variables, checked at start-up.

Storage:  CAMPAIGN_DATABASE_URL (postgresql://... or sqlite:///path; default sqlite:///var/campaign.db).
Breakers: BREAKER_TARGET (breaker_svc address, default 127.0.0.1:50051),
          CAMPAIGN_BREAKER_STALE_AFTER_S (breaker stream silence after which starts and resumes
          are refused with UNAVAILABLE, default 30), CAMPAIGN_AUTO_PAUSE (on; off only observes
          breaker changes: services/observer.py).
Jobs:     JOB_TARGET (job_svc address, default 127.0.0.1:50053), CAMPAIGN_JOB_CALL_TIMEOUT_S
          (deadline of each PauseJobs/ResumeJobs call, default 5), CAMPAIGN_OUTBOX_BACKOFF_MAX_S
          (cap of the retry backoff while job_svc refuses, default 10).
Metrics:  CAMPAIGN_METRICS_REFRESH_S (how often the gauges are recounted, default 5).
The server itself: CAMPAIGN_HOST, CAMPAIGN_PORT (50052), CAMPAIGN_METRICS_PORT, CAMPAIGN_HEALTH_PORT,
ADMIN_TOKEN, SERVICE_TOKEN (also sent to job_svc), TLS_*, SHUTDOWN_GRACE_S, LOG_LEVEL (services.config.ServerSettings).
"""

from dataclasses import dataclass
from pathlib import Path

from services.config import ServerSettings, env_bool, env_float, env_str

DEFAULT_PORT = 50052
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


@dataclass(frozen=True)
class CampaignSettings:
    server: ServerSettings
    database_url: str
    breaker_target: str
    job_target: str
    breaker_stale_after_s: float
    job_call_timeout_s: float
    outbox_backoff_max_s: float
    metrics_refresh_s: float
    auto_pause: bool = True

    @classmethod
    def from_env(cls) -> "CampaignSettings":
        return cls(
            server=ServerSettings.from_env("CAMPAIGN", DEFAULT_PORT),
            database_url=env_str("CAMPAIGN_DATABASE_URL", "sqlite:///var/campaign.db"),
            breaker_target=env_str("BREAKER_TARGET", "127.0.0.1:50051"),
            job_target=env_str("JOB_TARGET", "127.0.0.1:50053"),
            breaker_stale_after_s=env_float("CAMPAIGN_BREAKER_STALE_AFTER_S", 30.0, minimum=0.1),
            job_call_timeout_s=env_float("CAMPAIGN_JOB_CALL_TIMEOUT_S", 5.0, minimum=0.1),
            outbox_backoff_max_s=env_float("CAMPAIGN_OUTBOX_BACKOFF_MAX_S", 10.0, minimum=0.1),
            metrics_refresh_s=env_float("CAMPAIGN_METRICS_REFRESH_S", 5.0, minimum=0.1),
            auto_pause=env_bool("CAMPAIGN_AUTO_PAUSE", True),
        )
