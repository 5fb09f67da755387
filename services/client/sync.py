"""Synchronous facades for callers that are not async: the async client runs on an event loop
in a daemon thread of its own, and every thread of the caller submits to it.

    with SyncFacade(lambda: CampaignClient("127.0.0.1:50052")) as campaigns:
        campaigns.get(campaign_id)          # the coroutine method, run to completion

The facade enters the client as an async context manager (`__aenter__`) when it is made and
leaves it (`__aexit__`) on `close()`. It is thread-safe because the client is only ever touched
from its loop's thread.
"""

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running for ever in a daemon thread; `run` submits from any other thread."""

    def __init__(self, name: str = "services-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


async def _entered(factory: Callable[[], Any]) -> Any:
    # Made inside the loop: grpc.aio channels belong to the loop they are made in.
    return await factory().__aenter__()


class SyncFacade(Generic[T]):
    """Every coroutine method of the client made by `factory`, as a blocking method; other
    attributes as they are. `close()` (or leaving the `with` block) leaves the client's context
    and stops the thread."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._thread = LoopThread(f"{type(self).__name__}-loop")
        try:
            self.client: T = self._thread.run(_entered(factory))
        except BaseException:
            self._thread.close()
            raise

    def __getattr__(self, name: str) -> Any:
        if name == "client":  # not made (yet): no recursion through __getattr__
            raise AttributeError(name)
        attribute = getattr(self.client, name)
        if not inspect.iscoroutinefunction(attribute):
            return attribute

        def blocking(*args: Any, **kwargs: Any) -> Any:
            return self._thread.run(attribute(*args, **kwargs))

        return blocking

    def submit(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float | None = None) -> Any:
        """Runs any coroutine on the client's loop (for what is not a plain method call)."""
        return self._thread.run(coroutine, timeout_s)

    def close(self) -> None:
        try:
            self._thread.run(self.client.__aexit__(None, None, None))  # type: ignore[attr-defined]
        finally:
            self._thread.close()

    def __enter__(self) -> "SyncFacade[T]":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
