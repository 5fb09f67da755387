"""breaker_svc's settings from the environment, validated at start-up.

Store:      BREAKER_STORE (memory | redis, default memory), REDIS_URL (redis://127.0.0.1:6379/0),
            BREAKER_REDIS_PREFIX (key prefix, default "breaker:"; one Redis primary, not Redis
            Cluster), BREAKER_EVENT_RETENTION (transitions kept for replay, default 10000).
Batches:    BREAKER_BATCH_RETENTION_S (how long an outcome batch id is remembered, so a batch
            sent again is not counted again, default 600).
Streams:    BREAKER_HEARTBEAT_S (quiet-stream heartbeat period, default 5),
            BREAKER_WATCH_BUFFER (revisions a subscriber may lag before its stream ends: the size of the
            hub's ring, default 1000).
Timer:      BREAKER_TIMER_INTERVAL_S (how often breakers with a due open wait or half-open deadline
            are advanced, default 0.2).
Defaults for breakers not configured with ConfigureBreaker (BREAKER_DEFAULT_*): WINDOW_TYPE
(count_based | time_based), WINDOW_SIZE, MINIMUM_CALLS, FAILURE_RATE_THRESHOLD (percent),
SLOW_CALL_RATE_THRESHOLD (percent), SLOW_CALL_DURATION_S, CONSECUTIVE_FAILURE_THRESHOLD (0 = off),
OPEN_WAIT_S, OPEN_WAIT_MULTIPLIER, MAX_OPEN_WAIT_S, HALF_OPEN_PERMITTED_CALLS, MAX_HALF_OPEN_WAIT_S; unset ones take
the domain's defaults (BreakerConfig).
The server itself: BREAKER_HOST, BREAKER_PORT (50051), BREAKER_METRICS_PORT, BREAKER_HEALTH_PORT,
ADMIN_TOKEN, SERVICE_TOKEN, TLS_*, SHUTDOWN_GRACE_S, LOG_LEVEL (services.config.ServerSettings).
"""

from dataclasses import dataclass

from breaker_svc.domain import BreakerConfig, WindowType
from breaker_svc.store import BATCH_RETENTION_S
from breaker_svc.domain.config import InvalidConfig
from services.config import ConfigError, env_choice, env_float, env_int, env_str

_D = "BREAKER_DEFAULT_"


@dataclass(frozen=True)
class BreakerSettings:
    store: str
    redis_url: str
    redis_prefix: str
    event_retention: int
    heartbeat_s: float
    watch_buffer: int
    timer_interval_s: float
    default_config: BreakerConfig
    batch_retention_s: float = BATCH_RETENTION_S

    @classmethod
    def from_env(cls) -> "BreakerSettings":
        return cls(
            store=env_choice("BREAKER_STORE", "memory", ("memory", "redis")),
            redis_url=env_str("REDIS_URL", "redis://127.0.0.1:6379/0"),
            redis_prefix=env_str("BREAKER_REDIS_PREFIX", "breaker:"),
            event_retention=env_int("BREAKER_EVENT_RETENTION", 10_000, minimum=10, maximum=10_000_000),
            heartbeat_s=env_float("BREAKER_HEARTBEAT_S", 5.0, minimum=0.01, maximum=3600.0),
            watch_buffer=env_int("BREAKER_WATCH_BUFFER", 1000, minimum=1, maximum=1_000_000),
            timer_interval_s=env_float("BREAKER_TIMER_INTERVAL_S", 0.2, minimum=0.01, maximum=60.0),
            default_config=default_config_from_env(),
            batch_retention_s=env_float("BREAKER_BATCH_RETENTION_S", BATCH_RETENTION_S, minimum=1.0, maximum=86_400.0),
        )


# BreakerConfig field -> the suffix of its BREAKER_DEFAULT_* variable.
_ENV_SUFFIX = {
    "window_size": "WINDOW_SIZE",
    "minimum_calls": "MINIMUM_CALLS",
    "failure_rate_threshold": "FAILURE_RATE_THRESHOLD",
    "slow_call_rate_threshold": "SLOW_CALL_RATE_THRESHOLD",
    "slow_call_duration_threshold_s": "SLOW_CALL_DURATION_S",
    "consecutive_failure_threshold": "CONSECUTIVE_FAILURE_THRESHOLD",
    "open_wait_s": "OPEN_WAIT_S",
    "open_wait_multiplier": "OPEN_WAIT_MULTIPLIER",
    "max_open_wait_s": "MAX_OPEN_WAIT_S",
    "half_open_permitted_calls": "HALF_OPEN_PERMITTED_CALLS",
    "max_half_open_wait_s": "MAX_HALF_OPEN_WAIT_S",
}


def default_config_from_env() -> BreakerConfig:
    base = BreakerConfig()
    window_types = tuple(t.value for t in WindowType)
    values: dict[str, object] = {
        "window_type": WindowType(env_choice(f"{_D}WINDOW_TYPE", base.window_type.value, window_types))
    }
    for field, suffix in _ENV_SUFFIX.items():
        default = getattr(base, field)
        read = env_int if isinstance(default, int) else env_float
        values[field] = read(f"{_D}{suffix}", default)
    try:
        return BreakerConfig(**values).validated()
    except InvalidConfig as error:
        raise ConfigError(f"{_D}{_ENV_SUFFIX.get(error.field, 'WINDOW_TYPE')}: {error.message}") from None
