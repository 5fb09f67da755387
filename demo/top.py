"""`make top`: a live view of any running stack; `python -m demo.top`.

Polls the three services' read calls (ListBreakers, GetQueueStatus, ListCampaigns) and shows
breaker states with their revisions, jobs by status and by dependency, campaigns by status,
paused records by hold, and throughput. In a terminal it is a full-screen view drawn with rich;
without one (a pipe, CI) it prints a plain timeline: one line per change worth knowing.

Targets: BREAKER_TARGET (127.0.0.1:50051), JOB_TARGET (127.0.0.1:50053), CAMPAIGN_TARGET
(127.0.0.1:50052); TLS from TLS_CA_FILE like every client.
"""

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import grpc
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from campaign.v1 import campaign_pb2, campaign_pb2_grpc
from job.v1 import job_pb2, job_pb2_grpc
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from services.client.channel import open_channel

POLL_S = 0.5
RPC_TIMEOUT_S = 2.0
STATE_STYLE = {"CLOSED": "green", "FORCED_CLOSED": "green", "HALF_OPEN": "yellow", "OPEN": "bold red", "FORCED_OPEN": "bold red"}
JOB_STATUSES = ("pending", "processing", "paused", "completed", "failed", "cancelled")
CAMPAIGN_STATUSES = ("created", "running", "paused", "completed", "failed")


@dataclass(frozen=True)
class Targets:
    breaker: str
    job: str
    campaign: str

    @classmethod
    def from_env(cls) -> "Targets":
        return cls(
            breaker=os.environ.get("BREAKER_TARGET", "127.0.0.1:50051"),
            job=os.environ.get("JOB_TARGET", "127.0.0.1:50053"),
            campaign=os.environ.get("CAMPAIGN_TARGET", "127.0.0.1:50052"),
        )


@dataclass(frozen=True)
class BreakerRow:
    dependency: str
    state: str
    revision: int
    failure_rate: float
    calls: int


@dataclass(frozen=True)
class StackView:
    """One poll of the stack. A service that did not answer leaves its part empty and says why."""

    at: float
    breakers: tuple[BreakerRow, ...] = ()
    jobs: dict[str, int] = field(default_factory=dict)
    jobs_by_dependency: dict[str, dict[str, int]] = field(default_factory=dict)
    campaigns: dict[str, int] = field(default_factory=dict)
    paused_campaigns_by_hold: dict[str, int] = field(default_factory=dict)
    paused_jobs_by_hold: dict[str, int] = field(default_factory=dict)
    job_breaker_revision: int = 0
    unreachable: tuple[str, ...] = ()


def _name(enum_value_name: str, prefix: str) -> str:
    return enum_value_name.removeprefix(prefix)


class StackReader:
    """The read calls `top` makes, over one channel per service."""

    def __init__(self, targets: Targets) -> None:
        self._channels = [open_channel(t) for t in (targets.breaker, targets.job, targets.campaign)]
        self._breakers = breaker_pb2_grpc.BreakerServiceStub(self._channels[0])
        self._jobs = job_pb2_grpc.JobServiceStub(self._channels[1])
        self._campaigns = campaign_pb2_grpc.CampaignServiceStub(self._channels[2])

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()

    async def read(self) -> StackView:
        parts: dict[str, object] = {}
        unreachable = []
        for name, reader in (("breaker_svc", self._read_breakers), ("job_svc", self._read_jobs), ("campaign_svc", self._read_campaigns)):
            try:
                parts.update(await reader())
            except grpc.aio.AioRpcError as error:
                unreachable.append(f"{name}: {error.code().name}")
        return StackView(at=time.time(), unreachable=tuple(unreachable), **parts)  # type: ignore[arg-type]

    async def _read_breakers(self) -> dict[str, object]:
        rows, token = [], ""
        while True:
            page = await self._breakers.ListBreakers(
                breaker_pb2.ListBreakersRequest(page_size=1000, page_token=token), timeout=RPC_TIMEOUT_S
            )
            rows += [
                BreakerRow(
                    b.dependency,
                    _name(breaker_pb2.BreakerState.Name(b.state), "BREAKER_STATE_"),
                    b.revision,
                    b.metrics.failure_rate,
                    b.metrics.calls,
                )
                for b in page.breakers
            ]
            token = page.next_page_token
            if not token:
                return {"breakers": tuple(rows)}

    async def _read_jobs(self) -> dict[str, object]:
        status = await self._jobs.GetQueueStatus(job_pb2.GetQueueStatusRequest(), timeout=RPC_TIMEOUT_S)
        return {
            "jobs": dict(status.counts_by_status),
            "jobs_by_dependency": {d.dependency: dict(d.counts_by_status) for d in status.dependencies},
            "paused_jobs_by_hold": dict(status.paused_jobs_by_hold),
            "job_breaker_revision": status.applied_revision,
        }

    async def _read_campaigns(self) -> dict[str, object]:
        by_status: Counter[str] = Counter()
        by_hold: Counter[str] = Counter()
        token = ""
        while True:
            page = await self._campaigns.ListCampaigns(
                campaign_pb2.ListCampaignsRequest(page_size=1000, page_token=token), timeout=RPC_TIMEOUT_S
            )
            for campaign in page.campaigns:
                by_status[_name(campaign_pb2.CampaignStatus.Name(campaign.status), "CAMPAIGN_STATUS_").lower()] += 1
                for kind in {_name(campaign_pb2.HoldKind.Name(h.kind), "HOLD_KIND_").lower() for h in campaign.holds}:
                    by_hold[kind] += 1
            token = page.next_page_token
            if not token:
                return {"campaigns": dict(by_status), "paused_campaigns_by_hold": dict(by_hold)}


class Throughput:
    """Completed jobs per second over the last few polls."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window_s = window_s
        self._samples: list[tuple[float, int]] = []

    def add(self, view: StackView) -> float:
        self._samples.append((view.at, view.jobs.get("completed", 0)))
        while len(self._samples) > 2 and view.at - self._samples[0][0] > self._window_s:
            self._samples.pop(0)
        (t0, c0), (t1, c1) = self._samples[0], self._samples[-1]
        return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def _counts_line(counts: dict[str, int], order: tuple[str, ...]) -> str:
    return "  ".join(f"{status} {counts.get(status, 0)}" for status in order)


def render(view: StackView, jobs_per_s: float, caption: str = "") -> Group:
    """The full-screen view of one poll, under a caption (what the demo is doing)."""
    breakers = Table(title="breakers", expand=True)
    for column in ("dependency", "state", "revision", "calls", "failure rate"):
        breakers.add_column(column)
    for row in view.breakers:
        breakers.add_row(
            row.dependency, Text(row.state, style=STATE_STYLE.get(row.state, "")), str(row.revision), str(row.calls), f"{row.failure_rate:.0f}%"
        )
    jobs = Table(title="jobs by dependency", expand=True)
    jobs.add_column("dependency")
    for status in JOB_STATUSES:
        jobs.add_column(status, justify="right")
    for dependency, counts in sorted(view.jobs_by_dependency.items()):
        jobs.add_row(dependency, *(str(counts.get(status, 0)) for status in JOB_STATUSES))
    summary = Text.assemble(
        ("jobs      ", "bold"), _counts_line(view.jobs, JOB_STATUSES), f"   {jobs_per_s:.0f} jobs/s\n",
        ("campaigns ", "bold"), _counts_line(view.campaigns, CAMPAIGN_STATUSES), "\n",
        ("paused by hold  ", "bold"),
        f"jobs {dict(sorted(view.paused_jobs_by_hold.items())) or '{}'}   campaigns {dict(sorted(view.paused_campaigns_by_hold.items())) or '{}'}",
    )
    parts: list[object] = [Text(caption, style="bold cyan")] if caption else []
    parts += [breakers, jobs, Panel(summary, title=f"job_svc applied revision {view.job_breaker_revision}")]
    if view.unreachable:
        parts.append(Text("unreachable: " + ", ".join(view.unreachable), style="bold red"))
    return Group(*parts)


def timeline(before: StackView | None, now: StackView, elapsed_s: float) -> list[str]:
    """Plain lines for what changed between two polls: breaker transitions, campaign and job
    status counts (jobs at most once a second is left to the caller), reachability."""
    stamp = f"{elapsed_s:7.1f}s"
    lines = []
    old_states = {b.dependency: b for b in before.breakers} if before else {}
    for row in now.breakers:
        old = old_states.get(row.dependency)
        if old is None:
            lines.append(f"{stamp} breaker {row.dependency} is {row.state} (revision {row.revision})")
        elif old.state != row.state:
            lines.append(f"{stamp} breaker {row.dependency} {old.state} -> {row.state} (revision {row.revision})")
    if before is None or before.campaigns != now.campaigns:
        lines.append(f"{stamp} campaigns {_counts_line(now.campaigns, CAMPAIGN_STATUSES)}")
    if before is None or before.unreachable != now.unreachable:
        lines.append(f"{stamp} unreachable: {', '.join(now.unreachable) or 'none'}")
    return lines


def job_line(view: StackView, elapsed_s: float, jobs_per_s: float) -> str:
    holds = dict(sorted(view.paused_jobs_by_hold.items()))
    return f"{elapsed_s:7.1f}s jobs {_counts_line(view.jobs, JOB_STATUSES)}  paused by hold {holds}  {jobs_per_s:.0f} jobs/s"


async def watch(
    reader: StackReader, stop: Callable[[], bool], out: Console, interactive: bool, caption: Callable[[], str] = lambda: ""
) -> StackView:
    """Shows the stack until `stop()` is true; returns the last view."""
    started = time.monotonic()
    throughput = Throughput()
    before: StackView | None = None
    last_job_line = 0.0
    with Live(console=out, auto_refresh=False) if interactive else nullcontext() as live:
        while True:
            view = await reader.read()
            rate = throughput.add(view)
            elapsed = time.monotonic() - started
            if interactive:
                live.update(render(view, rate, caption()), refresh=True)
            else:
                for line in timeline(before, view, elapsed):
                    out.print(line, highlight=False)
                if elapsed - last_job_line >= 1.0 or before is None:
                    out.print(job_line(view, elapsed, rate), highlight=False)
                    last_job_line = elapsed
            before = view
            if stop():
                return view
            await asyncio.sleep(POLL_S)


async def main() -> int:
    reader = StackReader(Targets.from_env())
    out = Console(soft_wrap=True)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await watch(reader, stopping.is_set, out, interactive=out.is_terminal)
    finally:
        await reader.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
