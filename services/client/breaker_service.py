"""A thin typed client of breaker.v1.BreakerService, admin calls included.

    async with BreakerServiceClient("127.0.0.1:50051", token=os.environ.get("ADMIN_TOKEN")) as breakers:
        breaker = await breakers.force_open("perplexity", reason="provider incident")

Responses are the generated messages (`breaker.v1.breaker_pb2`, with type stubs). Reads and the
admin calls that set a state are retried on UNAVAILABLE; recording an outcome and acquiring a
permit are not (a retry could count twice or take two permits), except `record_outcomes` with
a `batch_id`, which breaker_svc counts once however often it arrives. Streams
(`WatchTransitions`, `RecordOutcomeBatches`) are what `BreakerClient` is for.
"""

from collections.abc import Iterable, Sequence

from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask

from services.breaker_state import BreakerState
from services.client.calls import ServiceClient

# (dependency, success, duration in seconds or None)
OutcomeTuple = tuple[str, bool, float | None]


def _result(success: bool) -> int:
    return pb.CALL_RESULT_SUCCESS if success else pb.CALL_RESULT_FAILURE


def _duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def state_to_proto(state: BreakerState | None) -> int:
    return pb.BREAKER_STATE_UNSPECIFIED if state is None else pb.BreakerState.Value(f"BREAKER_STATE_{state.name}")


class BreakerServiceClient(ServiceClient[breaker_pb2_grpc.BreakerServiceStub]):
    stub_class = breaker_pb2_grpc.BreakerServiceStub

    async def record_outcome(self, dependency: str, success: bool, duration_s: float | None = None) -> pb.RecordOutcomeResponse:
        request = pb.RecordOutcomeRequest(dependency=dependency, result=_result(success), duration=_duration(duration_s))
        return await self.call(self.stub.RecordOutcome, request, idempotent=False)

    async def record_outcomes(self, outcomes: Iterable[OutcomeTuple], batch_id: str | None = None) -> pb.RecordOutcomesResponse:
        """One batch; with `batch_id` it is counted once however often it is sent (so retried)."""
        requests = [
            pb.RecordOutcomesRequest(dependency=d, result=_result(s), duration=_duration(t), batch_id=(batch_id or "") if i == 0 else "")
            for i, (d, s, t) in enumerate(outcomes)
        ]
        return await self.call(self.stub.RecordOutcomes, requests, idempotent=batch_id is not None)

    async def acquire(self, dependency: str) -> pb.AcquireResponse:
        return await self.call(self.stub.Acquire, pb.AcquireRequest(dependency=dependency), idempotent=False)

    async def get(self, dependency: str) -> pb.Breaker:
        response = await self.call(self.stub.GetBreaker, pb.GetBreakerRequest(dependency=dependency), idempotent=True)
        return response.breaker

    async def list_page(self, state: BreakerState | None = None, page_size: int = 0, page_token: str = "") -> pb.ListBreakersResponse:
        request = pb.ListBreakersRequest(state=state_to_proto(state), page_size=page_size, page_token=page_token)
        return await self.call(self.stub.ListBreakers, request, idempotent=True)

    async def list_all(self, state: BreakerState | None = None) -> list[pb.Breaker]:
        """Every breaker (in `state`), by dependency name, read page after page."""
        breakers: list[pb.Breaker] = []
        token = ""
        while True:
            page = await self.list_page(state, 1000, token)
            breakers += page.breakers
            token = page.next_page_token
            if not token:
                return breakers

    async def configure(self, dependency: str, config: pb.BreakerConfig, update_mask: Sequence[str] = ()) -> pb.Breaker:
        """Applies the fields of `config` named in `update_mask` (without a mask, the non-zero ones)."""
        request = pb.ConfigureBreakerRequest(dependency=dependency, config=config, update_mask=FieldMask(paths=list(update_mask)))
        return (await self.call(self.stub.ConfigureBreaker, request, idempotent=True)).breaker

    async def force_open(self, dependency: str, reason: str = "") -> pb.Breaker:
        request = pb.ForceOpenRequest(dependency=dependency, reason=reason)
        return (await self.call(self.stub.ForceOpen, request, idempotent=True)).breaker

    async def force_close(self, dependency: str, reason: str = "") -> pb.Breaker:
        request = pb.ForceCloseRequest(dependency=dependency, reason=reason)
        return (await self.call(self.stub.ForceClose, request, idempotent=True)).breaker

    async def reset(self, dependency: str) -> pb.Breaker:
        return (await self.call(self.stub.ResetBreaker, pb.ResetBreakerRequest(dependency=dependency), idempotent=True)).breaker
