"""Simulated third-party providers for the lead-generation scenario: `python -m demo.providers`.

One process answers for apollo, millionverifier, perplexity, openai, instantly (and any other
valid name, created on first use with a healthy behaviour). Each provider's failure rate, latency
and outage switch change while it runs (`ConfigureProvider`, also through grpcurl), so the demo
and the tests can take a provider down and bring it back. It runs on the same runtime as the
services (health, reflection, access log, graceful shutdown); settings: PROVIDERS_HOST,
PROVIDERS_PORT (50060), LOG_LEVEL, and PROVIDERS_LATENCY_MS (default latency of every provider).
"""

import asyncio
import random
import sys
from dataclasses import dataclass, replace

import grpc
from demo.v1 import provider_pb2, provider_pb2_grpc
from google.protobuf import struct_pb2

from services import errors
from services.auth import access_table
from services.config import ServerSettings, env_int
from services.protoconv import duration, seconds
from services.server import ServiceHost, run_service
from services.validation import validate_dependency_name

SCENARIO_PROVIDERS = ("apollo", "millionverifier", "perplexity", "openai", "instantly")
SERVICE = provider_pb2.DESCRIPTOR.services_by_name["ProviderService"]
# Switching a provider off is an operator's act, like forcing a breaker open.
ACCESS = access_table(SERVICE, open_calls=["ListProviders"], service_calls=["Call"], admin_calls=["ConfigureProvider"])
MAX_LATENCY_S = 10.0
BEHAVIOUR_FIELDS = ("failure_rate", "latency", "down")


@dataclass(frozen=True)
class Behaviour:
    failure_rate: float = 0.0
    latency_s: float = 0.0
    down: bool = False


@dataclass
class SimulatedProvider:
    name: str
    behaviour: Behaviour
    succeeded: int = 0
    failed: int = 0

    def answer(self, draw: float) -> bool:
        """Whether a call succeeds, given a uniform draw in [0, 1); counts it."""
        ok = not self.behaviour.down and draw >= self.behaviour.failure_rate
        if ok:
            self.succeeded += 1
        else:
            self.failed += 1
        return ok


class ProviderRegistry:
    """Every provider by name; unknown names are created healthy on first use."""

    def __init__(self, default: Behaviour) -> None:
        self._default = default
        self._providers = {name: SimulatedProvider(name, default) for name in SCENARIO_PROVIDERS}

    def get(self, name: str) -> SimulatedProvider:
        validate_dependency_name(name, "provider")
        return self._providers.setdefault(name, SimulatedProvider(name, self._default))

    def configure(self, name: str, changes: dict[str, object]) -> SimulatedProvider:
        provider = self.get(name)
        provider.behaviour = replace(provider.behaviour, **changes)
        return provider

    def all(self) -> list[SimulatedProvider]:
        return sorted(self._providers.values(), key=lambda p: p.name)


def behaviour_changes(request: provider_pb2.ConfigureProviderRequest) -> dict[str, object]:
    """The fields the request changes, validated, as Behaviour keyword arguments."""
    paths = list(request.update_mask.paths) or list(BEHAVIOUR_FIELDS)
    unknown = sorted(set(paths) - set(BEHAVIOUR_FIELDS))
    if unknown:
        raise errors.InvalidArgument(f"update_mask names unknown fields {unknown}; known: {list(BEHAVIOUR_FIELDS)}")
    wanted = request.behaviour
    changes: dict[str, object] = {}
    if "failure_rate" in paths:
        if not 0.0 <= wanted.failure_rate <= 1.0:  # also refuses NaN
            raise errors.InvalidArgument(f"behaviour.failure_rate must be within 0..1, got {wanted.failure_rate}")
        changes["failure_rate"] = wanted.failure_rate
    if "latency" in paths:
        latency_s = seconds(wanted.latency, "behaviour.latency")
        if latency_s > MAX_LATENCY_S:
            raise errors.InvalidArgument(f"behaviour.latency must be at most {MAX_LATENCY_S:g}s, got {latency_s:g}s")
        changes["latency_s"] = latency_s
    if "down" in paths:
        changes["down"] = wanted.down
    return changes


def provider_message(provider: SimulatedProvider) -> provider_pb2.Provider:
    behaviour = provider.behaviour
    return provider_pb2.Provider(
        name=provider.name,
        behaviour=provider_pb2.ProviderBehaviour(
            failure_rate=behaviour.failure_rate, latency=duration(behaviour.latency_s), down=behaviour.down
        ),
        succeeded_count=provider.succeeded,
        failed_count=provider.failed,
    )


class ProviderServicer(provider_pb2_grpc.ProviderServiceServicer):
    def __init__(self, registry: ProviderRegistry, rng: random.Random) -> None:
        self._registry = registry
        self._rng = rng

    async def Call(self, request: provider_pb2.CallRequest, context: grpc.aio.ServicerContext) -> provider_pb2.CallResponse:
        provider = self._registry.get(request.provider)
        await asyncio.sleep(provider.behaviour.latency_s)
        if not provider.answer(self._rng.random()):
            reason = "down (simulated outage)" if provider.behaviour.down else "failing (simulated error)"
            raise errors.Unavailable(f"{provider.name} is {reason}")
        result = struct_pb2.Struct()
        result.update(request.payload)
        result["provider"] = provider.name
        return provider_pb2.CallResponse(result=result)

    async def ConfigureProvider(
        self, request: provider_pb2.ConfigureProviderRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.ConfigureProviderResponse:
        provider = self._registry.configure(request.provider, behaviour_changes(request))
        return provider_pb2.ConfigureProviderResponse(provider=provider_message(provider))

    async def ListProviders(
        self, request: provider_pb2.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> provider_pb2.ListProvidersResponse:
        return provider_pb2.ListProvidersResponse(providers=[provider_message(p) for p in self._registry.all()])


class ProvidersApp:
    def __init__(self, server_settings: ServerSettings, default: Behaviour, seed: int | None = None) -> None:
        self.host = ServiceHost("providers", server_settings)
        self.registry = ProviderRegistry(default)
        self._servicer = ProviderServicer(self.registry, random.Random(seed))

    async def start(self) -> int:
        def register(server: grpc.aio.Server) -> None:
            provider_pb2_grpc.add_ProviderServiceServicer_to_server(self._servicer, server)

        return await self.host.start(register, [SERVICE.full_name], ACCESS)

    async def close(self) -> None:
        pass


def app_from_env() -> ProvidersApp:
    latency_ms = env_int("PROVIDERS_LATENCY_MS", 20, minimum=0, maximum=int(MAX_LATENCY_S * 1000))
    return ProvidersApp(ServerSettings.from_env("PROVIDERS", 50060), Behaviour(latency_s=latency_ms / 1000))


if __name__ == "__main__":
    sys.exit(run_service("providers", app_from_env))
