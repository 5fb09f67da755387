"""`make demo`: the lead-generation scenario end to end; `python -m demo`.

Starts the stack on the embedded default (fresh SQLite files under var/demo/), the simulated
providers and a few worker processes running `demo.pipeline`; creates campaigns and starts
them; takes one provider down, then brings it back; completes each campaign when its jobs are
done; and ends with a summary. Meanwhile it shows the live view of `demo.top` (a plain timeline
when stdout is not a terminal).

It exits 0 only when every job completed, none was lost, and the outage cost no attempt: the
product's promise, checked on every run.
"""

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from demo.v1 import provider_pb2, provider_pb2_grpc
from google.protobuf import field_mask_pb2
from job.v1 import job_pb2, job_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from demo import pipeline
from demo.processes import ROOT, Process, ProcessGroup
from demo.providers import SCENARIO_PROVIDERS
from demo.top import StackReader, StackView, Targets, watch
from services.client.channel import open_channel

# Breakers that trip and recover within seconds, so the whole story fits in about a minute.
DEMO_BREAKER_DEFAULTS = {
    "BREAKER_DEFAULT_WINDOW_SIZE": "20",
    "BREAKER_DEFAULT_MINIMUM_CALLS": "5",
    "BREAKER_DEFAULT_FAILURE_RATE_THRESHOLD": "50",
    "BREAKER_DEFAULT_OPEN_WAIT_S": "3",
    "BREAKER_DEFAULT_HALF_OPEN_PERMITTED_CALLS": "2",
}
UNFINISHED = (job_pb2.JOB_STATUS_PENDING, job_pb2.JOB_STATUS_PROCESSING, job_pb2.JOB_STATUS_PAUSED)


@dataclass(frozen=True)
class Plan:
    campaigns: int
    leads_per_campaign: int
    workers: int
    concurrency: int
    latency_ms: int
    outage_provider: str
    outage_after_s: float
    outage_s: float
    timeout_s: float
    data_dir: Path

    @property
    def expected_jobs(self) -> int:
        return self.campaigns * (1 + self.leads_per_campaign)


@dataclass(frozen=True)
class Ports:
    breaker: int
    job: int
    campaign: int
    providers: int
    job_metrics: int

    @classmethod
    def from_env(cls) -> "Ports":
        def port(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(port("BREAKER_PORT", 50051), port("JOB_PORT", 50053), port("CAMPAIGN_PORT", 50052),
                   port("PROVIDERS_PORT", 50060), port("JOB_METRICS_PORT", 9463))

    @property
    def targets(self) -> Targets:
        return Targets(breaker=f"127.0.0.1:{self.breaker}", job=f"127.0.0.1:{self.job}", campaign=f"127.0.0.1:{self.campaign}")


@dataclass
class Summary:
    expected: int
    completed: int
    failed: int
    unfinished: int
    attempts_spent: int
    paused: int
    resumed: int
    campaigns_completed: int

    @property
    def lost(self) -> int:
        return self.expected - self.completed - self.failed - self.unfinished

    @property
    def ok(self) -> bool:
        return self.attempts_spent == 0 and self.lost == 0 and self.completed == self.expected

    def lines(self, plan: Plan) -> list[str]:
        rows = [
            ("jobs done", f"{self.completed} of {self.expected} ({self.failed} failed, {self.unfinished} unfinished)"),
            ("campaigns completed", f"{self.campaigns_completed} of {plan.campaigns}"),
            ("jobs paused/resumed", f"{self.paused} / {self.resumed} (pauses and releases, by job_svc's counters)"),
            ("attempts spent", f"{self.attempts_spent} (must be 0: the {plan.outage_provider} outage was not the jobs' fault)"),
            ("jobs lost", f"{self.lost} (must be 0)"),
            ("RESULT", "OK" if self.ok else "FAILED"),
        ]
        return [f"{label:<22}{value}" for label, value in rows]


def processes(ports: Ports, plan: Plan, data_dir: str) -> tuple[list[Process], list[Process]]:
    """The services and providers (servers), and the workers."""
    peers = {"BREAKER_TARGET": ports.targets.breaker, "JOB_TARGET": ports.targets.job,
             "CAMPAIGN_TARGET": ports.targets.campaign, "PROVIDERS_TARGET": f"127.0.0.1:{ports.providers}"}
    servers = [
        Process("breaker_svc", ["-m", "breaker_svc"], {**DEMO_BREAKER_DEFAULTS, "BREAKER_STORE": "memory",
                "BREAKER_PORT": str(ports.breaker)}, ports.targets.breaker),
        Process("job_svc", ["-m", "job_svc"], {**peers, "JOB_PORT": str(ports.job), "JOB_METRICS_PORT": str(ports.job_metrics),
                "JOB_DATABASE_URL": f"sqlite:///{data_dir}/job.db", "JOB_RETRY_BASE_S": "0.2", "JOB_RETRY_MAX_S": "2"},
                ports.targets.job),
        Process("campaign_svc", ["-m", "campaign_svc"], {**peers, "CAMPAIGN_PORT": str(ports.campaign),
                "CAMPAIGN_DATABASE_URL": f"sqlite:///{data_dir}/campaign.db"}, ports.targets.campaign),
        Process("providers", ["-m", "demo.providers"], {"PROVIDERS_PORT": str(ports.providers),
                "PROVIDERS_LATENCY_MS": str(plan.latency_ms)}, f"127.0.0.1:{ports.providers}"),
    ]
    workers = [
        Process(f"worker-{n}", ["-m", "services.client.worker", "demo.pipeline:worker", "--worker-id", f"demo-worker-{n}",
                                   "--concurrency", str(plan.concurrency)], peers)
        for n in range(1, plan.workers + 1)
    ]
    return servers, workers


class Scenario:
    """The operator's side of the story: campaigns, the outage, completions, the summary."""

    def __init__(self, ports: Ports, plan: Plan, say: Callable[[str], None]) -> None:
        self.ports = ports
        self.plan = plan
        self.say = say
        self._channels = [open_channel(t) for t in (ports.targets.job, ports.targets.campaign, f"127.0.0.1:{ports.providers}")]
        self.jobs = job_pb2_grpc.JobServiceStub(self._channels[0])
        self.campaigns = campaign_pb2_grpc.CampaignServiceStub(self._channels[1])
        self.providers = provider_pb2_grpc.ProviderServiceStub(self._channels[2])
        self.campaign_ids: list[str] = []
        self.completed_campaigns: set[str] = set()

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def launch_campaigns(self) -> None:
        for n in range(1, self.plan.campaigns + 1):
            campaign = (await self.campaigns.CreateCampaign(campaign_pb2.CreateCampaignRequest(
                name=f"Demo campaign {n}", dependencies=list(SCENARIO_PROVIDERS), request_id=f"demo-campaign-{n}"))).campaign
            await self.campaigns.StartCampaign(campaign_pb2.StartCampaignRequest(id=campaign.id))
            await self.jobs.CreateJob(pipeline.fetch_leads_request(campaign.id, self.plan.leads_per_campaign))
            self.campaign_ids.append(campaign.id)
        self.say(f"started {self.plan.campaigns} campaigns of {self.plan.leads_per_campaign} leads each")

    async def set_provider_down(self, down: bool) -> None:
        await self.providers.ConfigureProvider(provider_pb2.ConfigureProviderRequest(
            provider=self.plan.outage_provider, behaviour=provider_pb2.ProviderBehaviour(down=down),
            update_mask=field_mask_pb2.FieldMask(paths=["down"])))
        self.say(f"provider {self.plan.outage_provider} is {'DOWN' if down else 'back UP'}")

    async def complete_finished_campaigns(self) -> None:
        """A campaign is done when none of its jobs is left to run (its fetch job included)."""
        for campaign_id in self.campaign_ids:
            if campaign_id in self.completed_campaigns or await self._has_unfinished_jobs(campaign_id):
                continue
            campaign = (await self.campaigns.GetCampaign(campaign_pb2.GetCampaignRequest(id=campaign_id))).campaign
            if campaign.status != campaign_pb2.CAMPAIGN_STATUS_RUNNING:
                continue  # a paused campaign completes once it runs again
            try:
                await self.campaigns.CompleteCampaign(campaign_pb2.CompleteCampaignRequest(id=campaign_id))
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
                    raise
                continue  # paused since we looked: try again at the next round
            self.completed_campaigns.add(campaign_id)
            self.say(f"campaign {campaign.name} completed")

    async def _has_unfinished_jobs(self, campaign_id: str) -> bool:
        """One pass over the campaign's jobs, each read once. Asking status by status would race
        the jobs moving between them (paused -> pending as a breaker closes); finished is for
        good, so a pass that reads every job finished proves the campaign done."""
        token = ""
        while True:
            page = await self.jobs.ListJobs(job_pb2.ListJobsRequest(campaign_id=campaign_id, page_size=1000, page_token=token))
            if any(job.status in UNFINISHED for job in page.jobs):
                return True
            token = page.next_page_token
            if not token:
                return False

    async def summary(self) -> Summary:
        counts = dict((await self.jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest())).counts_by_status)
        attempts = 0
        token = ""
        while True:
            page = await self.jobs.ListJobs(job_pb2.ListJobsRequest(page_size=1000, page_token=token))
            attempts += sum(job.attempts for job in page.jobs)
            token = page.next_page_token
            if not token:
                break
        paused, resumed = job_pause_counters(self.ports.job_metrics)
        return Summary(
            expected=self.plan.expected_jobs, completed=counts.get("completed", 0), failed=counts.get("failed", 0),
            unfinished=sum(counts.get(s, 0) for s in ("pending", "processing", "paused")), attempts_spent=attempts,
            paused=paused, resumed=resumed, campaigns_completed=len(self.completed_campaigns),
        )

    @property
    def done(self) -> bool:
        return len(self.completed_campaigns) == self.plan.campaigns

    async def run(self) -> None:
        """The story, step by step; the live view runs beside it."""
        started = time.monotonic()
        await self.launch_campaigns()
        phase = "before"
        while not self.done and time.monotonic() - started < self.plan.timeout_s:
            elapsed = time.monotonic() - started
            if phase == "before" and elapsed >= self.plan.outage_after_s:
                await self.set_provider_down(True)
                phase = "outage"
            elif phase == "outage" and elapsed >= self.plan.outage_after_s + self.plan.outage_s:
                await self.set_provider_down(False)
                phase = "after"
            if phase == "after":
                await self.complete_finished_campaigns()
            await asyncio.sleep(0.5)
        if not self.done:
            self.say(f"gave up after {self.plan.timeout_s:g}s with {len(self.completed_campaigns)} campaigns completed")


def job_pause_counters(metrics_port: int) -> tuple[int, int]:
    """Jobs paused and released (all hold kinds), from job_svc's Prometheus counters."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    totals = {"paused": 0.0, "resumed": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for kind in totals:
                if sample.name == f"job_{kind}_total":
                    totals[kind] += sample.value
    return int(totals["paused"]), int(totals["resumed"])


async def play(plan: Plan, ports: Ports, console: Console) -> int:
    data_dir = plan.data_dir
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    group = ProcessGroup(data_dir)
    servers, workers = processes(ports, plan, str(data_dir))
    interactive = console.is_terminal
    notes: list[str] = []

    def say(text: str) -> None:
        notes.append(text)
        if not interactive:
            console.print(f"-- {text}", highlight=False)

    try:
        group.start(*servers)
        group.start(*workers)
        scenario = Scenario(ports, plan, say)
        reader = StackReader(ports.targets)
        story = asyncio.create_task(scenario.run())
        try:
            await watch(reader, story.done, console, interactive, caption=lambda: notes[-1] if notes else "starting")
            await story
            summary = await scenario.summary()
        finally:
            await reader.close()
            await scenario.close()
    finally:
        codes = group.stop()
    for line in summary.lines(plan):
        console.print(line, highlight=False)
    crashed = {name: code for name, code in codes.items() if code != 0}
    if crashed:
        console.print(f"processes that did not stop cleanly: {crashed} (logs in {data_dir})", highlight=False)
    return 0 if summary.ok and not crashed else 1


def parse_plan(argv: list[str]) -> Plan:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--campaigns", type=int, default=3)
    parser.add_argument("--leads", type=int, default=60, help="leads per campaign")
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs each worker runs at once")
    parser.add_argument("--latency-ms", type=int, default=150, help="each provider call's latency")
    parser.add_argument("--outage-provider", default="perplexity", choices=SCENARIO_PROVIDERS)
    parser.add_argument("--outage-after", type=float, default=4.0, help="seconds after the start before the provider goes down")
    parser.add_argument("--outage", type=float, default=8.0, help="seconds the provider stays down")
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds before the demo gives up")
    parser.add_argument("--data-dir", type=Path, default=ROOT / "var" / "demo", help="databases and logs (emptied first)")
    args = parser.parse_args(argv)
    return Plan(args.campaigns, args.leads, args.workers, args.concurrency, args.latency_ms, args.outage_provider, args.outage_after, args.outage, args.timeout,
                args.data_dir)


def main(argv: list[str]) -> int:
    plan = parse_plan(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop like Ctrl-C: processes are cleaned up
    try:
        return asyncio.run(play(plan, Ports.from_env(), Console(soft_wrap=True)))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
