"""`python -m services.healthcheck HOST:PORT [SERVICE]`: exits 0 when the server answers
SERVING, 1 otherwise. For container healthchecks (docker compose), where no gRPC probe exists;
it dials like every internal client (TLS from TLS_CA_FILE, services.client.channel)."""

import sys
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.client.channel import ClientTLS, open_sync_channel

# Reconnects at most 0.5 s apart while waiting: grpc's default backoff, grown while a slow start
# was refusing connections, could outlast the deadline after the server is up.
_WAITING_OPTIONS = (("grpc.max_reconnect_backoff_ms", 500),)


def wait_serving(address: str, timeout_s: float, still_running: Callable[[], bool], tls: ClientTLS | None) -> bool:
    """Polls the server's health until it answers SERVING (True), or the process behind it
    stops running or `timeout_s` passes (False): for launchers of local processes."""
    deadline = time.monotonic() + timeout_s
    with open_sync_channel(address, tls=tls, options=_WAITING_OPTIONS) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and still_running():
            try:
                if health.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    return False


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m services.healthcheck HOST:PORT [SERVICE]", file=sys.stderr)
        return 2
    with open_sync_channel(argv[1]) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=argv[2] if len(argv) == 3 else ""), timeout=3
            )
        except grpc.RpcError as error:
            print(f"{argv[1]}: {error.code().name}", file=sys.stderr)
            return 1
    serving = response.status == health_pb2.HealthCheckResponse.SERVING
    print(f"{argv[1]}: {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}")
    return 0 if serving else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
