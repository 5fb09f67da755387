"""The gRPC transport of CampaignService: protos in, use cases called, protos out.

Nothing here decides anything. Errors raised by the use cases (services.errors) become status
codes in the shared interceptor.
"""


import grpc
from campaign.v1 import campaign_pb2 as pb
from campaign.v1 import campaign_pb2_grpc

from campaign_svc.domain import Campaign, CampaignStatus, HoldKind
from campaign_svc.usecases import CampaignUseCases
from services.auth import access_table
from services.protoconv import ProtoEnum, timestamp
from services.watch import BREAKER_STATE

Context = grpc.aio.ServicerContext
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CampaignService"].full_name
ACCESS = access_table(
    pb.DESCRIPTOR.services_by_name["CampaignService"],
    open_calls=("GetCampaign", "ListCampaigns", "GetPauseStatus"),
    service_calls=(
        "CreateCampaign", "StartCampaign", "PauseCampaign", "ResumeCampaign", "CompleteCampaign", "FailCampaign",
    ),
    admin_calls=(),
)

CAMPAIGN_STATUS = ProtoEnum(pb.CampaignStatus, CampaignStatus, "CAMPAIGN_STATUS_")
HOLD_KIND = ProtoEnum(pb.HoldKind, HoldKind, "HOLD_KIND_")


def campaign_to_proto(campaign: Campaign) -> pb.Campaign:
    return pb.Campaign(
        id=campaign.id,
        name=campaign.name,
        description=campaign.description,
        dependencies=campaign.dependencies,
        status=CAMPAIGN_STATUS.to_proto(campaign.status),
        holds=[
            pb.PauseHold(
                kind=HOLD_KIND.to_proto(h.kind),
                dependency=h.dependency,
                revision=h.revision,
                reason=h.reason,
                create_time=timestamp(h.created_at),
            )
            for h in campaign.holds
        ],
        status_message=campaign.status_message,
        version=campaign.version,
        create_time=timestamp(campaign.created_at),
        update_time=timestamp(campaign.updated_at),
        start_time=timestamp(campaign.started_at),
        complete_time=timestamp(campaign.completed_at),
        fail_time=timestamp(campaign.failed_at),
    )


class CampaignServicer(campaign_pb2_grpc.CampaignServiceServicer):
    def __init__(self, usecases: CampaignUseCases) -> None:
        self._usecases = usecases

    async def CreateCampaign(self, request: pb.CreateCampaignRequest, context: Context) -> pb.CreateCampaignResponse:
        campaign = await self._usecases.create(request.name, request.description, list(request.dependencies), request.request_id)
        return pb.CreateCampaignResponse(campaign=campaign_to_proto(campaign))

    async def GetCampaign(self, request: pb.GetCampaignRequest, context: Context) -> pb.GetCampaignResponse:
        return pb.GetCampaignResponse(campaign=campaign_to_proto(await self._usecases.get(request.id)))

    async def ListCampaigns(self, request: pb.ListCampaignsRequest, context: Context) -> pb.ListCampaignsResponse:
        found, token = await self._usecases.list_page(CAMPAIGN_STATUS.from_proto(request.status, "status"), request.page_size, request.page_token)
        return pb.ListCampaignsResponse(campaigns=[campaign_to_proto(c) for c in found], next_page_token=token)

    async def StartCampaign(self, request: pb.StartCampaignRequest, context: Context) -> pb.StartCampaignResponse:
        return pb.StartCampaignResponse(campaign=campaign_to_proto(await self._usecases.start(request.id)))

    async def PauseCampaign(self, request: pb.PauseCampaignRequest, context: Context) -> pb.PauseCampaignResponse:
        campaign = await self._usecases.pause(request.id, request.reason)
        return pb.PauseCampaignResponse(campaign=campaign_to_proto(campaign))

    async def ResumeCampaign(self, request: pb.ResumeCampaignRequest, context: Context) -> pb.ResumeCampaignResponse:
        return pb.ResumeCampaignResponse(campaign=campaign_to_proto(await self._usecases.resume(request.id)))

    async def CompleteCampaign(self, request: pb.CompleteCampaignRequest, context: Context) -> pb.CompleteCampaignResponse:
        return pb.CompleteCampaignResponse(campaign=campaign_to_proto(await self._usecases.complete(request.id)))

    async def FailCampaign(self, request: pb.FailCampaignRequest, context: Context) -> pb.FailCampaignResponse:
        campaign = await self._usecases.fail(request.id, request.reason)
        return pb.FailCampaignResponse(campaign=campaign_to_proto(campaign))

    async def GetPauseStatus(self, request: pb.GetPauseStatusRequest, context: Context) -> pb.GetPauseStatusResponse:
        report = await self._usecases.pause_status()
        status = report.status
        return pb.GetPauseStatusResponse(
            dependencies=[
                pb.DependencyPauseStatus(
                    dependency=dependency,
                    breaker_state=BREAKER_STATE.to_proto(state),
                    paused_campaign_ids=status.held_by_dependency.get(dependency, []),
                )
                for dependency, state in status.breaker_states.items()
            ],
            manually_paused_campaign_ids=status.manually_paused,
            applied_revision=status.applied_revision,
            breaker_contact_time=timestamp(report.breaker_contact_time),
            breaker_state_stale=report.breaker_state_stale,
        )
