"""Configuration from environment variables, validated at start-up.

A bad value stops the process with a message naming the variable, the value and what is
allowed, rather than surfacing later as a confusing failure.
"""

import os
from dataclasses import dataclass


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_float(name: str, default: float, *, minimum: float | None = None, maximum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    _check_range(name, value, minimum, maximum)
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _check_range(name: str, value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be <= {maximum}, got {value}")


@dataclass(frozen=True)
class ServerSettings:
    """What every service's server needs: where to listen, how to stop, who is admin."""

    host: str
    port: int
    grace_s: float
    admin_token: str | None
    metrics_port: int | None
    log_level: str

    @classmethod
    def from_env(cls, prefix: str, default_port: int) -> "ServerSettings":
        metrics_port = env_int(f"{prefix}_METRICS_PORT", 0, minimum=0, maximum=65535)
        return cls(
            host=env_str(f"{prefix}_HOST", "127.0.0.1"),
            port=env_int(f"{prefix}_PORT", default_port, minimum=0, maximum=65535),
            grace_s=env_float("SHUTDOWN_GRACE_S", 10.0, minimum=0.0, maximum=300.0),
            admin_token=os.environ.get("ADMIN_TOKEN") or None,
            metrics_port=metrics_port or None,
            log_level=env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
        )
