"""Channels to the three services: plaintext, TLS or mTLS, and the bearer token to send.

Every client of this repository dials through `open_channel` (asyncio) or `open_sync_channel`
(threads): the client library, the breaker watch client, the outcome forwarder and the
job-command outbox. This module depends on grpcio alone, so `services.client` stays importable
without the server-side packages.

TLS comes from the environment when a caller does not pass it: `TLS_CA_FILE` (the CA that signed
the servers' certificates; its presence switches TLS on) and, for mTLS, `TLS_CERT_FILE` and
`TLS_KEY_FILE` (this process's own certificate, the same pair its server serves).
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc

# Keepalive so that a half-open TCP connection (a peer that vanished without a FIN) is noticed
# in tens of seconds rather than when the kernel gives up, and long-lived streams stay open
# through idle-connection reapers.
DEFAULT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
)


@dataclass(frozen=True)
class ClientTLS:
    """How to dial TLS: the CA to trust, and optionally a client certificate for mTLS."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "ClientTLS | None":
        """None (plaintext) unless TLS_CA_FILE is set."""
        ca_file = environ.get("TLS_CA_FILE") or None
        if ca_file is None:
            return None
        cert_file = environ.get("TLS_CERT_FILE") or None
        key_file = environ.get("TLS_KEY_FILE") or None
        if (cert_file is None) != (key_file is None):
            raise ValueError("TLS_CERT_FILE and TLS_KEY_FILE must be set together")
        return cls(ca_file, cert_file, key_file)

    def credentials(self) -> grpc.ChannelCredentials:
        cert = Path(self.cert_file).read_bytes() if self.cert_file else None
        key = Path(self.key_file).read_bytes() if self.key_file else None
        return grpc.ssl_channel_credentials(Path(self.ca_file).read_bytes(), key, cert)


_FROM_ENV = object()


def _resolve(tls: "ClientTLS | None | object") -> ClientTLS | None:
    return ClientTLS.from_env() if tls is _FROM_ENV else tls  # type: ignore[return-value]


def open_channel(
    target: str, *, tls: "ClientTLS | None | object" = _FROM_ENV, options: tuple[tuple[str, object], ...] = ()
) -> grpc.aio.Channel:
    """An asyncio channel to `target`: TLS when `tls` (by default, from the environment) says so."""
    resolved = _resolve(tls)
    merged = DEFAULT_OPTIONS + tuple(options)
    if resolved is None:
        return grpc.aio.insecure_channel(target, options=merged)
    return grpc.aio.secure_channel(target, resolved.credentials(), options=merged)


def open_sync_channel(
    target: str, *, tls: "ClientTLS | None | object" = _FROM_ENV, options: tuple[tuple[str, object], ...] = ()
) -> grpc.Channel:
    """The same as `open_channel`, for synchronous (threaded) callers."""
    resolved = _resolve(tls)
    merged = DEFAULT_OPTIONS + tuple(options)
    if resolved is None:
        return grpc.insecure_channel(target, options=merged)
    return grpc.secure_channel(target, resolved.credentials(), options=merged)


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The `authorization` header for `token`, or nothing when there is no token."""
    return (("authorization", f"Bearer {token}"),) if token else ()
