"""`LeaseKeeper`: keeps the leases of a worker's running jobs alive, all in one RenewLeases call.

Every third of the lease length it renews every lease the worker holds, so a job may run far
longer than its lease. A lease is lost when job_svc says so (it expired before the renewal got
there, or the job was cancelled or handed to another worker) or when no renewal has succeeded
in time (job_svc unreachable: by then it may have handed the job to someone else). Either way
`on_lost(job_id)` is called once: the worker abandons that job and never sends its result.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

import grpc

log = logging.getLogger("services.client.worker")

MAX_IDS_PER_CALL = 1000  # RenewLeases' limit
# RenewLeases: job ids and lease length -> the ids whose lease was lost.
Renew = Callable[[list[str], float], Awaitable[Iterable[str]]]


class LeaseKeeper:
    def __init__(self, renew: Renew, lease_s: float, on_lost: Callable[[str], None]) -> None:
        self._renew = renew
        self._lease_s = lease_s
        self._on_lost = on_lost
        self._valid_until: dict[str, float] = {}  # job id -> loop time its lease surely lasts to
        self._task: asyncio.Task[None] | None = None

    def hold(self, job_id: str, claimed_at: float) -> None:
        """A job claimed at loop time `claimed_at` (taken before the claim was sent)."""
        self._valid_until[job_id] = claimed_at + self._lease_s

    def release(self, job_id: str) -> None:
        self._valid_until.pop(job_id, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lease-keeper")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._lease_s / 3)
            held = list(self._valid_until)
            lost: set[str] = set()
            for start in range(0, len(held), MAX_IDS_PER_CALL):
                lost |= await self._renew_some(held[start : start + MAX_IDS_PER_CALL], loop.time())
            # A lease that will have ended before the next renewal may already be someone
            # else's by the time a result is ready: abandon it now.
            horizon = loop.time() + self._lease_s / 3
            self._drop(lost | {j for j, until in self._valid_until.items() if until <= horizon})

    async def _renew_some(self, job_ids: list[str], sent_at: float) -> set[str]:
        try:
            lost = set(await self._renew(job_ids, self._lease_s))
        except grpc.aio.AioRpcError as error:
            log.warning("lease_renewal_failed code=%s jobs=%d", error.code().name, len(job_ids))
            return set()
        for job_id in job_ids:
            if job_id in self._valid_until and job_id not in lost:
                self._valid_until[job_id] = sent_at + self._lease_s
        return lost

    def _drop(self, lost: set[str]) -> None:
        for job_id in lost:
            if self._valid_until.pop(job_id, None) is not None:
                log.warning("lease_lost job_id=%s", job_id)
                self._on_lost(job_id)
