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
class ServerTLS:
    """The certificate a server presents, and the CA its clients' certificates must chain to
    (mTLS) when one is given."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    @classmethod
    def from_env(cls) -> "ServerTLS | None":
        """None (plaintext) unless TLS_CERT_FILE and TLS_KEY_FILE are set."""
        cert_file = os.environ.get("TLS_CERT_FILE") or None
        key_file = os.environ.get("TLS_KEY_FILE") or None
        client_ca_file = os.environ.get("TLS_CLIENT_CA_FILE") or None
        if (cert_file is None) != (key_file is None):
            raise ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        if cert_file is None:
            if client_ca_file:
                raise ConfigError("TLS_CLIENT_CA_FILE needs TLS_CERT_FILE and TLS_KEY_FILE (the server's own certificate)")
            return None
        for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CLIENT_CA_FILE"):
            _check_readable(name)
        return cls(cert_file, key_file, client_ca_file)


def _check_readable(name: str) -> None:
    path = os.environ.get(name)
    if path and not os.access(path, os.R_OK):
        raise ConfigError(f"{name} names a file that cannot be read: {path!r}")


def _check_client_tls() -> None:
    """The internal clients dial TLS from TLS_CA_FILE (services.client.channel reads it at each
    dial); a half-configured client certificate is refused here, at start-up, not at the first
    call."""
    if not os.environ.get("TLS_CA_FILE"):
        return
    _check_readable("TLS_CA_FILE")
    if bool(os.environ.get("TLS_CERT_FILE")) != bool(os.environ.get("TLS_KEY_FILE")):
        raise ConfigError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")


@dataclass(frozen=True)
class ServerSettings:
    """What every service's server needs: where to listen, how to stop, which tokens to ask
    for, which certificate to serve."""

    host: str
    port: int
    grace_s: float
    admin_token: str | None
    metrics_port: int | None
    log_level: str
    service_token: str | None = None
    tls: ServerTLS | None = None
    health_port: int | None = None

    @classmethod
    def from_env(cls, prefix: str, default_port: int) -> "ServerSettings":
        metrics_port = env_int(f"{prefix}_METRICS_PORT", 0, minimum=0, maximum=65535)
        health_port = env_int(f"{prefix}_HEALTH_PORT", 0, minimum=0, maximum=65535)
        _check_client_tls()
        return cls(
            host=env_str(f"{prefix}_HOST", "127.0.0.1"),
            port=env_int(f"{prefix}_PORT", default_port, minimum=0, maximum=65535),
            grace_s=env_float("SHUTDOWN_GRACE_S", 10.0, minimum=0.0, maximum=300.0),
            admin_token=os.environ.get("ADMIN_TOKEN") or None,
            metrics_port=metrics_port or None,
            log_level=env_choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            service_token=os.environ.get("SERVICE_TOKEN") or None,
            tls=ServerTLS.from_env(),
            health_port=health_port or None,
        )
