"""Metrics of a breaker subscriber (job_svc and campaign_svc both export them): how far behind
breaker_svc's transition log it is, whether its breaker states are stale, what it heard and
whether it acts on it.

- breaker_subscriber_revision_seen: the newest revision heard on the stream (events and
  heartbeats).
- breaker_subscriber_revision_applied: the newest revision applied to this service's records.
- breaker_subscriber_lag_revisions: seen minus applied; above 0 for long, applying is stuck
  (e.g. the database is down) while breaker_svc moves on.
- breaker_subscriber_stale: 1 while the stream has been silent longer than the staleness bound.
- breaker_subscriber_state_changes_total{dependency, state}: breaker states this replica
  applied (whether or not auto-pause acted on them).
- breaker_subscriber_auto_pause: 1 when the service pauses and resumes its records, 0 when it
  only observes (JOB_AUTO_PAUSE / CAMPAIGN_AUTO_PAUSE off).
"""

import prometheus_client

REVISION_SEEN = prometheus_client.Gauge(
    "breaker_subscriber_revision_seen", "Newest breaker revision heard on the transition stream."
)
REVISION_APPLIED = prometheus_client.Gauge(
    "breaker_subscriber_revision_applied", "Newest breaker revision applied to this service's records."
)
LAG = prometheus_client.Gauge(
    "breaker_subscriber_lag_revisions", "Breaker revisions heard but not applied yet."
)
STALE = prometheus_client.Gauge(
    "breaker_subscriber_stale", "1 while the breaker stream has been silent longer than the staleness bound."
)
STATE_CHANGES = prometheus_client.Counter(
    "breaker_subscriber_state_changes", "Breaker state changes applied, by new state.", ["dependency", "state"]
)
AUTO_PAUSE = prometheus_client.Gauge(
    "breaker_subscriber_auto_pause", "1 when breaker states pause and resume records, 0 when only observed."
)


class RevisionProgress:
    """Seen and applied revisions of one subscriber. A snapshot sets them rather than moving them
    on: it may be of a new epoch, where revisions start again."""

    def __init__(self) -> None:
        self.seen = 0
        self.applied = 0

    def heard(self, revision: int, snapshot: bool = False) -> None:
        self.seen = revision if snapshot else max(self.seen, revision)
        self._export()

    def applied_up_to(self, revision: int, snapshot: bool = False) -> None:
        self.applied = revision if snapshot else max(self.applied, revision)
        self._export()

    def _export(self) -> None:
        REVISION_SEEN.set(self.seen)
        REVISION_APPLIED.set(self.applied)
        LAG.set(max(0, self.seen - self.applied))
