"""`python -m services.healthcheck HOST:PORT [SERVICE]`: exits 0 when the server answers
SERVING, 1 otherwise. For container healthchecks (docker compose), where no gRPC probe exists;
it dials like every internal client (TLS from TLS_CA_FILE, services.client.channel)."""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.client.channel import open_sync_channel


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
