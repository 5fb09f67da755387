"""Cross-cutting concerns of every RPC, in one server interceptor.

For each call: bind a request id (services.request_id), count the standard gRPC server metrics
(services.grpc_metrics), check the bearer token its access class needs
(services.auth), map errors to status codes (a `ServiceError` to its code; storage outages, as
`services.outages` tells them, to UNAVAILABLE; anything else to INTERNAL with a generic message,
so a traceback never reaches the caller), and write one access-log line with method, peer,
status code and duration.

grpc.aio decodes a request before any handler code runs, and answers UNKNOWN (naming the
exception) when that fails. So the interceptor gives every handler a tolerant decoder: bytes that
do not decode (a corrupt message, invalid UTF-8 in a string, nesting too deep) become a marker
that the call turns into INVALID_ARGUMENT, through the same error mapping as everything else.
"""

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import grpc
import sqlalchemy.exc
import structlog

from services import errors, request_id
from services.auth import Access, Tokens
from services.outages import is_storage_outage
from services.grpc_metrics import RpcMetrics, rpc_type

STATUS_BY_ERROR: dict[type[errors.ServiceError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

# A status message longer than this is cut (values echoed in messages are cut already; this
# keeps any message well inside gRPC's metadata limit).
MAX_STATUS_MESSAGE_LENGTH = 1000
UNDECODABLE_MESSAGE = (
    "the request is not a valid message of this method's request type"
    " (malformed bytes, a string that is not UTF-8, or nesting too deep)"
)

# Probes and tooling are called often; their access lines go to debug.
QUIET_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

log = structlog.get_logger()


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a caller sees for an error raised by a handler."""
    if isinstance(error, errors.ServiceError):
        for error_type in type(error).__mro__:
            if error_type in STATUS_BY_ERROR:
                return STATUS_BY_ERROR[error_type], error.message
    if isinstance(error, NotImplementedError):  # what a generated servicer base raises for a missing method
        return grpc.StatusCode.UNIMPLEMENTED, "this method is not implemented"
    if is_storage_outage(error):
        return grpc.StatusCode.UNAVAILABLE, "storage is unavailable, retry later"
    if isinstance(error, sqlalchemy.exc.DataError):
        # The database refused a value (an encoding, a range) that validation let through: the
        # request's fault, so never INTERNAL; logged, since validation should have caught it.
        return grpc.StatusCode.INVALID_ARGUMENT, "a value in the request cannot be stored"
    return grpc.StatusCode.INTERNAL, "internal error"


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, access: Mapping[str, Access], tokens: Tokens) -> None:
        self._access = access
        self._tokens = tokens
        # Per method: the handler grpc gave, and its wrapped copy. Built on a method's first
        # call and reused: what varies per call lives in the wrapper's locals, not in the handler.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._wrapped.get(method)
        if known is None or known[0] is not handler:
            known = self._wrapped[method] = (handler, self._wrap(method, handler))
        return known[1]

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        metrics = RpcMetrics(method, rpc_type(handler.request_streaming, handler.response_streaming))
        # Methods outside the services' tables (health, reflection) are open.
        call = _Method(method, self._access.get(method, Access.OPEN), self._tokens, metrics)
        kinds = {
            "unary_unary": grpc.unary_unary_rpc_method_handler,
            "unary_stream": grpc.unary_stream_rpc_method_handler,
            "stream_unary": grpc.stream_unary_rpc_method_handler,
            "stream_stream": grpc.stream_stream_rpc_method_handler,
        }
        for kind, make_handler in kinds.items():
            behaviour = getattr(handler, kind)
            if behaviour is not None:
                behaviour = _refusing_undecodable(behaviour, handler.request_streaming)
                wrapped = call.wrap_streaming(behaviour) if handler.response_streaming else call.wrap_unary(behaviour)
                return make_handler(
                    wrapped,
                    request_deserializer=_tolerant(handler.request_deserializer),
                    response_serializer=handler.response_serializer,
                )
        return handler


class _Undecodable:
    """What a request that does not decode becomes, so that the call itself refuses it."""


UNDECODABLE = _Undecodable()


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except Exception:  # noqa: BLE001 - whatever the decoder raises, the bytes are the caller's fault
            return UNDECODABLE

    return deserialize


def _refusing_undecodable(behaviour: Callable[..., Any], request_streaming: bool) -> Callable[..., Any]:
    """The behaviour, called only with decoded requests: a request (or a streamed message) that
    did not decode raises InvalidArgument where the handler would have received it."""
    if request_streaming:

        async def decoded(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
            async for request in requests:
                if request is UNDECODABLE:
                    raise errors.InvalidArgument(UNDECODABLE_MESSAGE)
                yield request

        return lambda requests, context: behaviour(decoded(requests), context)

    def checked(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if request is UNDECODABLE:
            raise errors.InvalidArgument(UNDECODABLE_MESSAGE)
        return behaviour(request, context)

    return checked


class _Method:
    """Wraps one method's behaviour, for each of its calls, with the request id, token check,
    error mapping and access log.

    Once the client has gone (cancellation, or the stream generator closed by GeneratorExit),
    the call's context may already be freed by grpc: nothing reads it after that point, which
    is why the peer is taken at the start and the code of a cancelled call is not asked for.
    """

    def __init__(self, method: str, access: Access, tokens: Tokens, metrics: RpcMetrics) -> None:
        self.method = method
        self.access = access
        self.tokens = tokens
        self.metrics = metrics
        self.log_level = "debug" if method.startswith(QUIET_SERVICES) else "info"

    def wrap_unary(self, behaviour: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def unary(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> Any:
            request_or_iterator, started = self._begin(request_or_iterator, context)
            try:
                self._check_token(started)
                response = await behaviour(request_or_iterator, context)
            except (asyncio.CancelledError, GeneratorExit):
                self._end(started, "CANCELLED")
                raise
            except BaseException as error:  # noqa: BLE001 - every error is mapped or re-raised
                await self._fail(context, started, error)
            self.metrics.sent.inc()
            self._end(started, _code_name(context))
            return response

        return unary

    def wrap_streaming(self, behaviour: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        async def streaming(request_or_iterator: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request_or_iterator, started = self._begin(request_or_iterator, context)
            try:
                self._check_token(started)
                async for response in behaviour(request_or_iterator, context):
                    self.metrics.sent.inc()
                    yield response
            except (asyncio.CancelledError, GeneratorExit):
                self._end(started, "CANCELLED")
                raise
            except BaseException as error:  # noqa: BLE001 - every error is mapped or re-raised
                await self._fail(context, started, error)
            self._end(started, _code_name(context))

        return streaming

    def _begin(self, request_or_iterator: Any, context: grpc.aio.ServicerContext) -> tuple[Any, "_Started"]:
        """Binds the call's log context and counts the call; returns its request (a request
        stream counted as it is read) and what the rest of the call needs to know of its start."""
        metadata = dict(context.invocation_metadata() or ())
        structlog.contextvars.bind_contextvars(request_id=request_id.begin(metadata.get("x-request-id")), method=self.method)
        started = _Started(context.peer(), time.perf_counter(), metadata.get("authorization", ""))
        return self.metrics.started(request_or_iterator), started

    def _check_token(self, started: "_Started") -> None:
        self.tokens.check(self.access, started.authorization)

    async def _fail(self, context: grpc.aio.ServicerContext, started: "_Started", error: BaseException) -> None:
        """Ends the call with the error's status code (context.abort raises AbortError)."""
        if isinstance(error, grpc.aio.AbortError):  # the handler aborted by itself
            self._end(started, _code_name(context))
            raise error
        code, message = status_for(error)
        if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAVAILABLE) or isinstance(error, sqlalchemy.exc.DataError):
            log.error("rpc_error", code=code.name, exc_info=error)
        self._end(started, code.name)
        await context.abort(code, message[:MAX_STATUS_MESSAGE_LENGTH])

    def _end(self, started: "_Started", code_name: str) -> None:
        duration_s = time.perf_counter() - started.at
        self.metrics.handled(code_name, duration_s)
        getattr(log, self.log_level)("rpc", peer=started.peer, code=code_name, duration_ms=round(duration_s * 1000, 2))
        structlog.contextvars.unbind_contextvars("request_id", "method")


class _Started(NamedTuple):
    """One call's start: its peer (read while the context is alive), the time, its token."""

    peer: str
    at: float
    authorization: str


def _code_name(context: grpc.aio.ServicerContext) -> str:
    """The code the handler set (OK when it set none); only for calls still alive."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) else "OK"
