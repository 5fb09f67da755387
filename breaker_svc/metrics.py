"""Prometheus metrics of breaker_svc (served by ServiceHost on BREAKER_METRICS_PORT).

- breaker_state{dependency, state}: 1 for the breaker's current state, 0 for the others, as this
  replica last heard it from the transition log (every replica follows the whole log); a
  breaker that records calls but never changed state shows as closed from its first call.
- breaker_transitions_total{dependency, from_state, to_state}: transitions this replica committed
  (summed over replicas, each transition is counted once).
- breaker_calls_total{dependency, result}: outcomes recorded through this replica.
- breaker_watch_subscribers: open WatchTransitions streams on this replica.
"""

import prometheus_client

from breaker_svc.domain import BreakerState

BREAKER_STATE = prometheus_client.Gauge(
    "breaker_state", "1 for the breaker's current state, 0 for the others.", ["dependency", "state"]
)
TRANSITIONS = prometheus_client.Counter(
    "breaker_transitions", "State transitions committed by this replica.", ["dependency", "from_state", "to_state"]
)
CALLS = prometheus_client.Counter("breaker_calls", "Call outcomes recorded.", ["dependency", "result"])
WATCH_SUBSCRIBERS = prometheus_client.Gauge("breaker_watch_subscribers", "Open WatchTransitions streams.")


_WITH_STATE: set[str] = set()  # dependencies whose breaker_state series exist


def observe_state(dependency: str, state: BreakerState) -> None:
    _WITH_STATE.add(dependency)
    for each in BreakerState:
        BREAKER_STATE.labels(dependency, each.value).set(1 if each is state else 0)


def observe_transition(dependency: str, from_state: BreakerState, to_state: BreakerState) -> None:
    TRANSITIONS.labels(dependency, from_state.value, to_state.value).inc()


def observe_calls(dependency: str, state: BreakerState, success: bool, count: int = 1) -> None:
    """Counts outcomes; `state` (the breaker's after them) gives a breaker first heard of through
    its calls its state series, which otherwise only a transition would create."""
    CALLS.labels(dependency, "success" if success else "failure").inc(count)
    if dependency not in _WITH_STATE:
        observe_state(dependency, state)
