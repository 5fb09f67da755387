"""The plumbing every typed client shares: one unary call with a deadline, a request id, the
optional bearer token, and retries with backoff on UNAVAILABLE for calls that are safe to repeat.

`Caller` is handed the stub method and the request (`ServiceClient` below is the base of the
typed clients: a channel, a stub and a Caller):

    caller = Caller(token="...", timeout_s=5.0)
    response = await caller(stub.GetBreaker, request, idempotent=True)

- The deadline (`timeout_s`) bounds the whole call, retries included; each attempt gets what is
  left of it.
- One request id per logical call (`x-request-id`, a fresh one unless given), sent with every
  attempt, so the services' access logs tie the attempts together.
- Only UNAVAILABLE is retried (the request did not reach a server, or the server's storage was
  down), and only when the caller says the call is idempotent: a read, an admin call that sets a
  state, or a create that carries a `request_id`. Anything else is raised at once as the
  `grpc.aio.AioRpcError` it is.
"""

import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import grpc

from services.backoff import Backoff
from services.client.channel import _FROM_ENV, ClientTLS, bearer_metadata, open_channel

Response = TypeVar("Response")

# stub.Method: request, timeout, metadata -> an awaitable response.
UnaryMethod = Callable[..., Awaitable[Any]]


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


class Caller:
    def __init__(
        self,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        attempts: int = 5,
        backoff_initial_s: float = 0.05,
        backoff_max_s: float = 2.0,
    ) -> None:
        if timeout_s <= 0 or attempts < 1:
            raise ValueError("timeout_s must be positive and attempts at least 1")
        self.timeout_s = timeout_s
        self._auth = bearer_metadata(token)
        self._attempts = attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s

    def metadata(self, request_id: str | None = None) -> tuple[tuple[str, str], ...]:
        """The headers of one call: its request id and the token (for streams opened directly)."""
        return (("x-request-id", request_id or new_request_id()), *self._auth)

    async def __call__(
        self,
        method: UnaryMethod,
        request: Any,
        *,
        idempotent: bool,
        timeout_s: float | None = None,
        request_id: str | None = None,
    ) -> Any:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        metadata = self.metadata(request_id)
        backoff = Backoff(self._backoff_initial_s, self._backoff_max_s)
        attempt = 1
        while True:
            try:
                return await method(request, timeout=max(0.001, deadline - time.monotonic()), metadata=metadata)
            except grpc.aio.AioRpcError as error:
                retry = (
                    idempotent
                    and error.code() == grpc.StatusCode.UNAVAILABLE
                    and attempt < self._attempts
                    and deadline - time.monotonic() > backoff.next_s
                )
                if not retry:
                    raise
            await backoff.wait()
            attempt += 1


Stub = TypeVar("Stub")


class ServiceClient(Generic[Stub]):
    """A typed client's plumbing: its own channel to `target` (TLS per `channel.py`), or a
    channel shared with another client (`on_channel`, not closed by this one), the stub, and the
    `Caller` (token, deadline, retries). Use it as an async context manager, or `close()` it."""

    stub_class: type[Stub]

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        tls: ClientTLS | None | object = _FROM_ENV,
        timeout_s: float = 10.0,
        attempts: int = 5,
    ) -> None:
        self._setup(open_channel(target, tls=tls), Caller(token=token, timeout_s=timeout_s, attempts=attempts), owns=True)

    @classmethod
    def on_channel(cls, channel: grpc.aio.Channel, caller: Caller) -> "ServiceClient[Stub]":
        client = cls.__new__(cls)
        client._setup(channel, caller, owns=False)
        return client

    def _setup(self, channel: grpc.aio.Channel, caller: Caller, owns: bool) -> None:
        self.channel = channel
        self.stub: Stub = self.stub_class(channel)  # type: ignore[call-arg]
        self.call = caller
        self._owns_channel = owns

    async def close(self) -> None:
        if self._owns_channel:
            await self.channel.close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
