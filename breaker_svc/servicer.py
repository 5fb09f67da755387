"""breaker.v1.BreakerService over grpc.aio: proto -> use case -> proto, nothing more.

Errors are raised as services.errors exceptions; the server interceptor maps them to status codes.
"""

from collections.abc import AsyncIterator

import grpc
from breaker.v1 import breaker_pb2 as pb
from breaker.v1 import breaker_pb2_grpc

from breaker_svc import convert
from breaker_svc.usecases import MAX_BATCH, BreakerUseCases
from services.watch import BREAKER_STATE
from services.auth import access_table
from services.errors import InvalidArgument

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BreakerService"].full_name
ACCESS = access_table(
    pb.DESCRIPTOR.services_by_name["BreakerService"],
    open_calls=("GetBreaker", "ListBreakers", "WatchTransitions"),
    service_calls=("RecordOutcome", "RecordOutcomes", "RecordOutcomeBatches", "Acquire"),
    admin_calls=("ConfigureBreaker", "ForceOpen", "ForceClose", "ResetBreaker"),
)


class BreakerServicer(breaker_pb2_grpc.BreakerServiceServicer):
    def __init__(self, use_cases: BreakerUseCases) -> None:
        self._use_cases = use_cases

    async def RecordOutcome(self, request: pb.RecordOutcomeRequest, context: grpc.aio.ServicerContext) -> pb.RecordOutcomeResponse:
        mutation = await self._use_cases.record_outcome(convert.outcome_from_proto(request))
        response = pb.RecordOutcomeResponse(breaker=convert.breaker_to_proto(mutation.breaker, mutation.now))
        if mutation.event is not None:
            response.transition.CopyFrom(convert.transition_to_proto(mutation.event))
        return response

    async def RecordOutcomes(
        self, request_iterator: AsyncIterator[pb.RecordOutcomesRequest], context: grpc.aio.ServicerContext
    ) -> pb.RecordOutcomesResponse:
        outcomes = []
        batch_id = ""
        async for request in request_iterator:
            if len(outcomes) == MAX_BATCH:
                raise InvalidArgument(f"a batch may hold at most {MAX_BATCH} outcomes")
            if not outcomes:
                batch_id = request.batch_id  # the first message names the batch
            elif request.batch_id and request.batch_id != batch_id:
                raise InvalidArgument("batch_id must be set on the first message, and later ones may only repeat it")
            outcomes.append(convert.outcome_from_proto(request))
        recorded = await self._use_cases.record_outcomes(outcomes, batch_id or None)
        last = {m.breaker.dependency: m for m in recorded.mutations}  # each breaker as it was after the batch
        return pb.RecordOutcomesResponse(
            recorded_count=recorded.recorded,
            already_recorded_count=recorded.already_recorded,
            breakers=[convert.breaker_to_proto(m.breaker, m.now) for _, m in sorted(last.items())],
        )

    async def RecordOutcomeBatches(
        self, request_iterator: AsyncIterator[pb.RecordOutcomeBatchesRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RecordOutcomeBatchesResponse]:
        async for request in request_iterator:
            if not request.outcomes:
                raise InvalidArgument("a batch must hold at least one outcome")
            outcomes = [convert.outcome_from_proto(o) for o in request.outcomes]
            recorded = await self._use_cases.record_outcomes(outcomes, request.batch_id)
            yield pb.RecordOutcomeBatchesResponse(
                batch_id=request.batch_id, recorded_count=recorded.recorded, already_recorded_count=recorded.already_recorded
            )

    async def Acquire(self, request: pb.AcquireRequest, context: grpc.aio.ServicerContext) -> pb.AcquireResponse:
        permission = await self._use_cases.acquire(request.dependency)
        response = pb.AcquireResponse(permitted=permission.permitted, state=BREAKER_STATE.to_proto(permission.state))
        if permission.retry_after_s > 0:
            response.retry_after.CopyFrom(convert.duration(permission.retry_after_s))
        return response

    async def GetBreaker(self, request: pb.GetBreakerRequest, context: grpc.aio.ServicerContext) -> pb.GetBreakerResponse:
        seen = await self._use_cases.get(request.dependency)
        return pb.GetBreakerResponse(breaker=convert.breaker_to_proto(seen.breaker, seen.now))

    async def ListBreakers(self, request: pb.ListBreakersRequest, context: grpc.aio.ServicerContext) -> pb.ListBreakersResponse:
        page = await self._use_cases.list(request.page_size, request.page_token, BREAKER_STATE.from_proto(request.state, "state"))
        return pb.ListBreakersResponse(
            breakers=[convert.breaker_to_proto(b, page.now) for b in page.breakers], next_page_token=page.next_page_token
        )

    async def ConfigureBreaker(
        self, request: pb.ConfigureBreakerRequest, context: grpc.aio.ServicerContext
    ) -> pb.ConfigureBreakerResponse:
        updates = convert.config_updates_from_proto(request.config, list(request.update_mask.paths))
        mutation = await self._use_cases.configure(request.dependency, updates)
        return pb.ConfigureBreakerResponse(breaker=convert.breaker_to_proto(mutation.breaker, mutation.now))

    async def ForceOpen(self, request: pb.ForceOpenRequest, context: grpc.aio.ServicerContext) -> pb.ForceOpenResponse:
        mutation = await self._use_cases.force_open(request.dependency, request.reason)
        return pb.ForceOpenResponse(breaker=convert.breaker_to_proto(mutation.breaker, mutation.now))

    async def ForceClose(self, request: pb.ForceCloseRequest, context: grpc.aio.ServicerContext) -> pb.ForceCloseResponse:
        mutation = await self._use_cases.force_close(request.dependency, request.reason)
        return pb.ForceCloseResponse(breaker=convert.breaker_to_proto(mutation.breaker, mutation.now))

    async def ResetBreaker(self, request: pb.ResetBreakerRequest, context: grpc.aio.ServicerContext) -> pb.ResetBreakerResponse:
        mutation = await self._use_cases.reset(request.dependency)
        return pb.ResetBreakerResponse(breaker=convert.breaker_to_proto(mutation.breaker, mutation.now))

    async def WatchTransitions(
        self, request: pb.WatchTransitionsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchTransitionsResponse]:
        from_revision = request.from_revision if request.HasField("from_revision") else None
        async for item in self._use_cases.watch(from_revision, request.dependencies, request.epoch or None):
            yield convert.watch_item_to_proto(item)
