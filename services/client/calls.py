"""The plumbing every typed client shares: one unary call with a deadline, a request id, the
optional bearer token, and retries with backoff on UNAVAILABLE for calls that are safe to repeat.

`Caller` is handed the stub method and the request:

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
from typing import Any, TypeVar

import grpc

from services.backoff import Backoff
from services.client.channel import bearer_metadata

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
