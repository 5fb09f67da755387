"""Observe-only mode of a breaker subscriber (JOB_AUTO_PAUSE=off, CAMPAIGN_AUTO_PAUSE=off), for
a gradual roll-out: the service follows breaker_svc's stream, logs and counts every breaker
state change, and touches nothing in its database: no record is paused or resumed, and neither
the stored breaker states nor the applied position move.

Because the applied position stays where it was, switching auto-pause on again (a restart with
it on) reconciles at once: the mirror resumes from that position, so breaker_svc replays every
transition since (or sends a reset snapshot when they are no longer retained) and each one is
applied to the records as usual.
"""

import structlog

from services import subscriber_metrics
from services.breaker_state import BreakerState
from services.watch import BreakerView, Position, Snapshot, Transition

log = structlog.get_logger()


class BreakerObserver:
    def __init__(self, known: dict[str, BreakerView], position: Position) -> None:
        """`known` and `position`: the stored states and applied position it starts from."""
        self._known = dict(known)
        self.position = position

    def observe(self, event: Snapshot | Transition) -> None:
        if isinstance(event, Snapshot):
            incoming = {view.dependency: view for view in event.breakers}
            if event.reset:  # dependencies a reset does not list have no breaker any more
                for dependency in self._known.keys() - incoming.keys():
                    incoming[dependency] = BreakerView(dependency, BreakerState.CLOSED, 0, 0)
            for _, view in sorted(incoming.items()):
                self._changed(view)
        elif self.position.revision is None or event.revision > self.position.revision:
            self._changed(event.view)
        self.position = Position(event.epoch if event.epoch is not None else self.position.epoch, event.revision)

    def _changed(self, view: BreakerView) -> None:
        old = self._known.get(view.dependency)
        self._known[view.dependency] = view
        if old is not None and old.state == view.state:
            return
        subscriber_metrics.STATE_CHANGES.labels(view.dependency, view.state.value).inc()
        log.info(
            "breaker_observed", dependency=view.dependency, state=view.state.value,
            from_state=old.state.value if old else None, revision=view.revision, auto_pause="off",
        )
