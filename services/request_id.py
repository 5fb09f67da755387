"""The request id of the call being handled, carried to every hop it causes.

The service interceptor sets it from the caller's `x-request-id` header (a fresh id when there
is none); whatever a call writes for later delivery (job_svc's outcome outbox, campaign_svc's
job-command outbox) stores it, and the forwarder sends it on as `x-request-id`, so one id can
be followed through the access logs of every service the call reached.
"""

import os
from contextvars import ContextVar

MAX_LENGTH = 128  # the outbox columns' width; longer ids from callers are cut

_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def begin(header: str | None) -> str:
    """Sets (and returns) the id of the call starting in this task."""
    request_id = (header or os.urandom(8).hex())[:MAX_LENGTH]
    _current.set(request_id)
    return request_id


def current() -> str | None:
    """The id of the call this code runs for; None outside a call (background work)."""
    return _current.get()


def joined(request_ids: list[str | None], limit: int = 20) -> str | None:
    """One header for a batch that several calls wrote: their distinct ids, oldest first."""
    distinct = list(dict.fromkeys(i for i in request_ids if i))
    if not distinct:
        return None
    shown = ",".join(distinct[:limit])
    return shown if len(distinct) <= limit else f"{shown},+{len(distinct) - limit}"
