"""A thin typed client of campaign.v1.CampaignService.

    async with CampaignClient("127.0.0.1:50052") as campaigns:
        campaign = await campaigns.create("Q4 outreach", ["apollo", "openai"], request_id="q4")
        campaign = await campaigns.start(campaign.id)

Responses are the generated messages (`campaign.v1.campaign_pb2`, with type stubs); errors are
`grpc.aio.AioRpcError` with the service's status code (e.g. FAILED_PRECONDITION naming the open
breakers when a start is refused). Reads are retried on UNAVAILABLE, and so is a create that
carries a `request_id` (the service returns the first result for a repeated one); lifecycle
changes are not, since a retry of one that took effect would be refused as a transition that
is not allowed.
"""

from collections.abc import Sequence

from campaign.v1 import campaign_pb2 as pb
from campaign.v1 import campaign_pb2_grpc

from services.client.calls import ServiceClient


class CampaignClient(ServiceClient[campaign_pb2_grpc.CampaignServiceStub]):
    stub_class = campaign_pb2_grpc.CampaignServiceStub

    async def create(
        self, name: str, dependencies: Sequence[str], *, description: str = "", request_id: str | None = None
    ) -> pb.Campaign:
        request = pb.CreateCampaignRequest(
            name=name, dependencies=list(dependencies), description=description, request_id=request_id or ""
        )
        response = await self.call(self.stub.CreateCampaign, request, idempotent=request_id is not None)
        return response.campaign

    async def get(self, campaign_id: str) -> pb.Campaign:
        return (await self.call(self.stub.GetCampaign, pb.GetCampaignRequest(id=campaign_id), idempotent=True)).campaign

    async def list_page(self, status: int = pb.CAMPAIGN_STATUS_UNSPECIFIED, page_size: int = 0, page_token: str = "") -> pb.ListCampaignsResponse:
        """One page, oldest first; `status` is a `campaign_pb2.CampaignStatus` value (0: all)."""
        request = pb.ListCampaignsRequest(status=status, page_size=page_size, page_token=page_token)
        return await self.call(self.stub.ListCampaigns, request, idempotent=True)

    async def start(self, campaign_id: str) -> pb.Campaign:
        return (await self.call(self.stub.StartCampaign, pb.StartCampaignRequest(id=campaign_id), idempotent=False)).campaign

    async def pause(self, campaign_id: str, reason: str = "") -> pb.Campaign:
        request = pb.PauseCampaignRequest(id=campaign_id, reason=reason)
        return (await self.call(self.stub.PauseCampaign, request, idempotent=False)).campaign

    async def resume(self, campaign_id: str) -> pb.Campaign:
        return (await self.call(self.stub.ResumeCampaign, pb.ResumeCampaignRequest(id=campaign_id), idempotent=False)).campaign

    async def complete(self, campaign_id: str) -> pb.Campaign:
        request = pb.CompleteCampaignRequest(id=campaign_id)
        return (await self.call(self.stub.CompleteCampaign, request, idempotent=False)).campaign

    async def fail(self, campaign_id: str, reason: str = "") -> pb.Campaign:
        request = pb.FailCampaignRequest(id=campaign_id, reason=reason)
        return (await self.call(self.stub.FailCampaign, request, idempotent=False)).campaign

    async def pause_status(self) -> pb.GetPauseStatusResponse:
        return await self.call(self.stub.GetPauseStatus, pb.GetPauseStatusRequest(), idempotent=True)
