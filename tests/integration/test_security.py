"""Security by configuration: tokens by role on every method, TLS and mTLS on the gRPC port,
the plaintext health port for probes; with real channels, grpcurl included."""

import asyncio
import os
import dataclasses
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc
from campaign.v1 import campaign_pb2
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from job.v1 import job_pb2

import breaker_svc.servicer
import campaign_svc.servicer
import job_svc.servicer
from breaker_svc.app import BreakerApp
from breaker_svc.store.memory import MemoryStore
from services import errors
from services.auth import Access, Tokens, access_table
from services.client.channel import ClientTLS, bearer_metadata, open_channel
from services.config import ConfigError, ServerSettings, ServerTLS
from tests.support.breaker import settings as breaker_settings
from tests.support.processes import free_port
from tests.support.tls import Certificates, make_certificates

GRPCURL = Path(sys.executable).parent / "grpcurl"
ADMIN, SERVICE = "admin-s3cret", "service-s3cret"


# --- the tables -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "descriptor"),
    [
        (breaker_svc.servicer, pb.DESCRIPTOR.services_by_name["BreakerService"]),
        (job_svc.servicer, job_pb2.DESCRIPTOR.services_by_name["JobService"]),
        (campaign_svc.servicer, campaign_pb2.DESCRIPTOR.services_by_name["CampaignService"]),
    ],
)
def test_every_method_of_every_service_is_classified(module, descriptor) -> None:  # type: ignore[no-untyped-def]
    assert set(module.ACCESS) == {f"/{descriptor.full_name}/{m}" for m in descriptor.methods_by_name}
    reads = {m for m in descriptor.methods_by_name if m.startswith(("Get", "List", "Watch"))}
    assert {m.rsplit("/", 1)[1] for m, a in module.ACCESS.items() if a is Access.OPEN} == reads


def test_admin_calls_are_the_operator_overrides() -> None:
    admin_calls = {
        m.rsplit("/", 1)[1]
        for table in (breaker_svc.servicer.ACCESS, job_svc.servicer.ACCESS, campaign_svc.servicer.ACCESS)
        for m, a in table.items()
        if a is Access.ADMIN
    }
    assert admin_calls == {"ConfigureBreaker", "ForceOpen", "ForceClose", "ResetBreaker", "RedriveJobs"}


def _service_with(*methods: str):  # type: ignore[no-untyped-def]
    """A proto service descriptor with these methods, as a new RPC would add one."""
    file = descriptor_pb2.FileDescriptorProto(name="probe/v1/probe.proto", package="probe.v1", syntax="proto3")
    file.message_type.add(name="Empty")
    service = file.service.add(name="ProbeService")
    for name in methods:
        service.method.add(name=name, input_type=".probe.v1.Empty", output_type=".probe.v1.Empty")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return pool.FindServiceByName("probe.v1.ProbeService")


def test_a_method_left_unclassified_or_classified_twice_or_unknown_is_refused() -> None:
    service = _service_with("GetThing", "CreateThing", "NewThing")
    with pytest.raises(ValueError, match="classify NewThing"):
        access_table(service, open_calls=["GetThing"], service_calls=["CreateThing"], admin_calls=[])
    with pytest.raises(ValueError, match="twice"):
        access_table(service, open_calls=["GetThing"], service_calls=["CreateThing", "NewThing"], admin_calls=["GetThing"])
    with pytest.raises(ValueError, match="no methods Gone"):
        access_table(service, open_calls=["GetThing", "Gone"], service_calls=["CreateThing", "NewThing"], admin_calls=[])
    table = access_table(service, open_calls=["GetThing"], service_calls=["CreateThing"], admin_calls=["NewThing"])
    assert table["/probe.v1.ProbeService/NewThing"] is Access.ADMIN


# --- the check ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "authorization", "passes"),
    [
        (Access.OPEN, "", True),
        (Access.SERVICE, "", False),
        (Access.SERVICE, SERVICE, False),  # a bare token, without the scheme
        (Access.SERVICE, f"Bearer {SERVICE}", True),
        (Access.SERVICE, f"bearer {SERVICE}", True),  # the scheme is case-insensitive (RFC 7235)
        (Access.SERVICE, f"Basic {SERVICE}", False),
        (Access.SERVICE, f"Bearer {ADMIN}", True),  # the admin token passes service checks
        (Access.SERVICE, f"Bearer {SERVICE}x", False),
        (Access.ADMIN, f"Bearer {SERVICE}", False),
        (Access.ADMIN, ADMIN, False),
        (Access.ADMIN, f"Bearer {ADMIN}", True),
    ],
)
def test_tokens_by_role(access: Access, authorization: str, passes: bool) -> None:
    tokens = Tokens(admin=ADMIN, service=SERVICE)
    if passes:
        tokens.check(access, authorization)
    else:
        with pytest.raises(errors.Unauthenticated):
            tokens.check(access, authorization)


def test_a_check_with_no_token_configured_lets_everything_through() -> None:
    Tokens(admin=ADMIN).check(Access.SERVICE, "")
    Tokens(service=SERVICE).check(Access.ADMIN, "")
    with pytest.raises(errors.Unauthenticated, match="ADMIN_TOKEN"):
        Tokens(admin=ADMIN).check(Access.ADMIN, "")


# --- configuration --------------------------------------------------------------------------


def test_tls_settings_are_checked_at_start_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    monkeypatch.setenv("TLS_CERT_FILE", str(certs.cert_file))
    with pytest.raises(ConfigError, match="TLS_CERT_FILE and TLS_KEY_FILE must be set together"):
        ServerSettings.from_env("BREAKER", 50051)
    monkeypatch.setenv("TLS_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(ConfigError, match="TLS_KEY_FILE names a file that cannot be read"):
        ServerSettings.from_env("BREAKER", 50051)
    monkeypatch.setenv("TLS_KEY_FILE", str(certs.key_file))
    monkeypatch.setenv("TLS_CLIENT_CA_FILE", str(certs.ca_file))
    monkeypatch.setenv("SERVICE_TOKEN", SERVICE)
    monkeypatch.setenv("BREAKER_HEALTH_PORT", "6001")
    settings = ServerSettings.from_env("BREAKER", 50051)
    assert settings.tls == ServerTLS(str(certs.cert_file), str(certs.key_file), str(certs.ca_file))
    assert (settings.service_token, settings.health_port) == (SERVICE, 6001)
    monkeypatch.setenv("TLS_CA_FILE", str(tmp_path / "nowhere.pem"))
    with pytest.raises(ConfigError, match="TLS_CA_FILE"):
        ServerSettings.from_env("BREAKER", 50051)
    for name in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="TLS_CLIENT_CA_FILE needs"):
        ServerSettings.from_env("BREAKER", 50051)


# --- real servers ---------------------------------------------------------------------------


@asynccontextmanager
async def breaker_server(**server: object) -> AsyncIterator[tuple[BreakerApp, str]]:
    base = ServerSettings("127.0.0.1", 0, 1.0, None, None, "warning")
    app = BreakerApp(breaker_settings(), dataclasses.replace(base, **server), store=MemoryStore())
    port = await app.start()
    try:
        yield app, f"127.0.0.1:{port}"
    finally:
        await app.stop()


async def code_of(call) -> grpc.StatusCode | None:  # type: ignore[no-untyped-def]
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return None


async def test_each_method_asks_for_the_token_of_its_role() -> None:
    async with breaker_server(admin_token=ADMIN, service_token=SERVICE) as (_, target):
        async with open_channel(target, tls=None) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            outcome = pb.RecordOutcomeRequest(dependency="openai", result=pb.CALL_RESULT_SUCCESS)
            unauthenticated = grpc.StatusCode.UNAUTHENTICATED
            assert await code_of(stub.RecordOutcome(outcome)) == unauthenticated
            assert await code_of(stub.RecordOutcome(outcome, metadata=(("authorization", SERVICE),))) == unauthenticated
            assert await code_of(stub.Acquire(pb.AcquireRequest(dependency="openai"))) == unauthenticated
            assert await code_of(stub.RecordOutcomes(iter([pb.RecordOutcomesRequest(dependency="openai")]))) == unauthenticated
            assert await code_of(stub.RecordOutcome(outcome, metadata=bearer_metadata(SERVICE))) is None
            assert await code_of(stub.RecordOutcome(outcome, metadata=bearer_metadata(ADMIN))) is None
            force = pb.ForceOpenRequest(dependency="openai", reason="test")
            assert await code_of(stub.ForceOpen(force, metadata=bearer_metadata(SERVICE))) == unauthenticated
            assert await code_of(stub.ForceOpen(force, metadata=bearer_metadata(ADMIN))) is None
            # Reads and the stream stay open.
            assert (await stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))).breaker.state == pb.BREAKER_STATE_FORCED_OPEN
            stream = stub.WatchTransitions(pb.WatchTransitionsRequest())
            assert (await stream.read()).WhichOneof("event") == "snapshot"
            stream.cancel()
            health = health_pb2_grpc.HealthStub(channel)
            assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


async def test_concurrent_calls_of_one_method_each_have_their_own_token_check() -> None:
    """The interceptor builds a method's wrapper once and reuses it: a call's token, peer and
    start time must stay that call's, however many of the method's calls overlap."""
    async with breaker_server(admin_token=ADMIN, service_token=SERVICE) as (_, target):
        async with open_channel(target, tls=None) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            outcome = pb.RecordOutcomeRequest(dependency="openai", result=pb.CALL_RESULT_SUCCESS)
            tokens = [bearer_metadata(SERVICE) if i % 2 else (("authorization", f"Bearer wrong-{i}"),) for i in range(40)]
            codes = await asyncio.gather(*(code_of(stub.RecordOutcome(outcome, metadata=token)) for token in tokens))
            assert codes == [None if i % 2 else grpc.StatusCode.UNAUTHENTICATED for i in range(40)]


@pytest.fixture
def certs(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


async def health_of(target: str, tls: ClientTLS | None) -> grpc.StatusCode | None:
    async with open_channel(target, tls=tls) as channel:
        return await code_of(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5))


async def test_mtls_serves_clients_with_a_certificate_of_the_ca_and_refuses_the_rest(certs: Certificates) -> None:
    health_port = free_port()
    tls = ServerTLS(str(certs.cert_file), str(certs.key_file), str(certs.ca_file))
    async with breaker_server(tls=tls, health_port=health_port) as (_, target):
        assert await health_of(target, certs.client()) is None
        assert await health_of(target, None) == grpc.StatusCode.UNAVAILABLE  # plaintext
        assert await health_of(target, certs.client(with_certificate=False)) == grpc.StatusCode.UNAVAILABLE
        assert await health_of(target, ClientTLS(str(certs.other_ca_file))) == grpc.StatusCode.UNAVAILABLE
        # The probe port: plaintext, health only.
        assert await health_of(f"127.0.0.1:{health_port}", None) is None
        async with open_channel(f"127.0.0.1:{health_port}", tls=None) as channel:
            stub = breaker_pb2_grpc.BreakerServiceStub(channel)
            assert await code_of(stub.GetBreaker(pb.GetBreakerRequest(dependency="openai"))) == grpc.StatusCode.UNIMPLEMENTED


async def test_tls_without_a_client_ca_serves_any_tls_client(certs: Certificates) -> None:
    tls = ServerTLS(str(certs.cert_file), str(certs.key_file))
    async with breaker_server(tls=tls) as (_, target):
        assert await health_of(target, certs.client(with_certificate=False)) is None
        assert await health_of(target, None) == grpc.StatusCode.UNAVAILABLE


async def grpcurl(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_grpcurl_over_mtls_with_the_tokens(certs: Certificates) -> None:
    tls = ServerTLS(str(certs.cert_file), str(certs.key_file), str(certs.ca_file))
    async with breaker_server(tls=tls, admin_token=ADMIN, service_token=SERVICE) as (_, target):
        mtls = ["-cacert", str(certs.ca_file), "-cert", str(certs.cert_file), "-key", str(certs.key_file)]
        code, output = await grpcurl(*mtls, target, "list")
        assert code == 0 and "breaker.v1.BreakerService" in output, output
        outcome = ["-d", '{"dependency": "openai", "result": "CALL_RESULT_SUCCESS"}']
        code, output = await grpcurl(*mtls, *outcome, target, "breaker.v1.BreakerService/RecordOutcome")
        assert code != 0 and "Unauthenticated" in output, output
        code, output = await grpcurl(
            *mtls, "-H", f"authorization: Bearer {SERVICE}", *outcome, target, "breaker.v1.BreakerService/RecordOutcome"
        )
        assert code == 0 and '"dependency": "openai"' in output, output
        code, output = await grpcurl("-plaintext", target, "list")
        assert code != 0, output
        code, output = await grpcurl("-cacert", str(certs.ca_file), target, "list")  # no client certificate
        assert code != 0, output


async def healthcheck(target: str, env: dict[str, str]) -> int:
    """`python -m services.healthcheck`, the compose healthcheck, with only `env` for TLS."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TLS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.healthcheck", target, env={**clean, **env},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    return await process.wait()


async def test_the_container_healthcheck_dials_like_the_internal_clients(certs: Certificates) -> None:
    tls = ServerTLS(str(certs.cert_file), str(certs.key_file), str(certs.ca_file))
    async with breaker_server(tls=tls) as (_, target):
        assert await healthcheck(target, certs.server_env()) == 0
        assert await healthcheck(target, {}) == 1  # plaintext is refused
    async with breaker_server() as (_, target):
        assert await healthcheck(target, {}) == 0
