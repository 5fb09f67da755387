"""The lead-generation pipeline's workers, built on the client library:
`python -m services.client.worker demo.pipeline:worker`.

- `fetch_leads` (calls apollo) finds a campaign's leads and enqueues one `enrich_lead` job per
  lead, in one batch whose request ids make a re-run of the fetch harmless;
- `enrich_lead` checks the lead's email (millionverifier), researches the company
  (perplexity), writes the email (openai) and sends it (instantly), each call through the
  breaker guard of its provider.

A provider that fails is the provider's fault, not the job's: the guard records it, the job
fails naming the provider and is paused without spending an attempt, and runs again when the
provider's breaker lets calls through. The providers are the simulated ones of
`demo.providers` (PROVIDERS_TARGET, default 127.0.0.1:50060).
"""

import os
from typing import Any

from demo.v1 import provider_pb2, provider_pb2_grpc
from google.protobuf import json_format, struct_pb2
from job.v1 import job_pb2

from services.client import JobClient, JobContext, Worker
from services.client.channel import open_channel
from services.client.jobs import job_request

FETCH_LEADS = "fetch_leads"
ENRICH_LEAD = "enrich_lead"
ENRICH_PROVIDERS = ("millionverifier", "perplexity", "openai", "instantly")
PROVIDER_TIMEOUT_S = 5.0

worker = Worker(concurrency=16, lease_s=30.0)


class Providers:
    """Calls to the simulated providers; one channel per process, opened on first use."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._stub: provider_pb2_grpc.ProviderServiceStub | None = None

    async def call(self, provider: str, payload: dict[str, Any]) -> dict[str, Any]:
        if self._stub is None:
            self._stub = provider_pb2_grpc.ProviderServiceStub(open_channel(self._target))
        request = provider_pb2.CallRequest(provider=provider, payload=json_format.ParseDict(payload, struct_pb2.Struct()))
        response = await self._stub.Call(request, timeout=PROVIDER_TIMEOUT_S)
        return json_format.MessageToDict(response.result)


providers = Providers(os.environ.get("PROVIDERS_TARGET", "127.0.0.1:50060"))
_enqueuer: JobClient | None = None


def enqueuer() -> JobClient:
    """The JobClient `fetch_leads` enqueues with (JOB_TARGET, SERVICE_TOKEN, TLS_* as for the worker)."""
    global _enqueuer
    if _enqueuer is None:
        _enqueuer = JobClient(os.environ.get("JOB_TARGET", "127.0.0.1:50053"), token=os.environ.get("SERVICE_TOKEN"))
    return _enqueuer


def fetch_leads_request(campaign_id: str, leads: int) -> job_pb2.CreateJobRequest:
    """The job that starts a campaign's pipeline."""
    return job_request(FETCH_LEADS, ["apollo"], {"campaign_id": campaign_id, "leads": leads},
                       campaign_id=campaign_id, request_id=f"fetch-{campaign_id}")


def enrich_lead_request(campaign_id: str, lead: dict[str, Any]) -> job_pb2.CreateJobRequest:
    return job_request(ENRICH_LEAD, ENRICH_PROVIDERS, lead, campaign_id=campaign_id,
                       request_id=f"enrich-{campaign_id}-{lead['index']}")


@worker.handler(FETCH_LEADS)
async def fetch_leads(job: JobContext) -> dict[str, Any]:
    campaign_id, count = job.payload["campaign_id"], int(job.payload["leads"])
    async with job.guard("apollo"):
        await providers.call("apollo", {"campaign_id": campaign_id, "count": count})
    leads = [{"index": i, "email": f"lead{i}@example.com", "company": f"company-{i}"} for i in range(count)]
    await enqueuer().create_many([enrich_lead_request(campaign_id, lead) for lead in leads])
    return {"leads": count}


@worker.handler(ENRICH_LEAD)
async def enrich_lead(job: JobContext) -> dict[str, Any]:
    steps = {}
    for provider in ENRICH_PROVIDERS:
        async with job.guard(provider):
            steps[provider] = await providers.call(provider, {"email": job.payload["email"]})
    return {"enriched_by": sorted(steps)}
