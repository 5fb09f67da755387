"""`Worker`: runs job handlers by job type, with guards around the providers they call.

    from services.client import JobContext, Worker

    worker = Worker(concurrency=8)

    @worker.handler("enrich_lead")
    async def enrich_lead(job: JobContext) -> dict:
        async with job.guard("perplexity"):          # a provider the job declared
            company = await look_up(job.payload["domain"])
        return {"employees": company.employees}    # stored as the job's result

Run it with `python -m services.client.worker mymodule:worker` (or `graceful-worker
mymodule:worker`; `--help` lists the flags and environment), or from your own
code with `await worker.run(jobs=JobClient(...), breakers=BreakerClient(...))`.

What a handler's end means:
- it returns a mapping (or None): the job is completed, the mapping stored as its result;
- it raises `BreakerOpen`, or an exception that a guard recorded as that provider's failure:
  the job fails naming the provider (`failed_dependency`), which spends no attempt: job_svc
  pauses it while the provider's breaker is open and releases it when the breaker lets calls
  through again;
- it raises anything else: an ordinary failure with the error's message, which spends an
  attempt (retried with backoff until `max_attempts`).

How it runs:
- claims wait (up to `claim_wait_s`) for work and ask for no more jobs than free slots, so at
  most `concurrency` handlers run at once; slots freed one by one are gathered for
  `batch_window_s` (5 ms) so that claims, like finishes, go out in batches;
- leases (`lease_s`) are renewed in the background, all in one call, so a handler may run as
  long as it needs; a job whose lease is lost is cancelled and its result never sent;
- finishes go to job_svc in FinishJobs batches (after `batch_window_s`, or at `finish_batch`),
  and the slots of a batch's jobs go with it: the same call claims the next jobs for them
  (`next_claim`, for the job type most of the batch ran), so a busy queue costs one round trip
  per batch; slots it finds no job for go back to the waiting claims;
- SIGTERM or SIGINT (or `stop()`): no more claims (a waiting claim is ended), running handlers
  get `grace_s` to finish, finishes are flushed, and `run()` returns (the command exits 0).
  Handlers still running after the grace period are cancelled and their jobs left to their
  leases: job_svc hands them out again once the lease expires, spending no attempt (it counts
  the lost lease: at JOB_MAX_LEASE_EXPIRATIONS a job fails). The finishes sent after the stop
  claim nothing; a claim that was being answered at the very moment of the stop (a waiting
  one, or a FinishJobs' next claim) is left to its lease the same way.
"""

from services.client.worker.runner import JobContext, Worker

__all__ = ["JobContext", "Worker"]
