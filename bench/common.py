"""What every benchmark shares: quiet logs, a unique Redis key prefix, percentiles and a
plain-text table (throw-away storage comes from tests.support.databases)."""

import statistics
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

from services.config import ServerSettings
from services.logging import configure_logging
from tests.support.databases import throwaway_redis_prefix

REDIS_URL = "redis://127.0.0.1:6379/0"
# Port 0: the service picks a free port. Log level warning: no access-log line per call.
SERVER = ServerSettings(host="127.0.0.1", port=0, grace_s=1.0, admin_token=None, metrics_port=None, log_level="warning")


def quiet_logs() -> None:
    configure_logging("bench", "warning")


def redis_prefix() -> AbstractAsyncContextManager[str]:
    """A key prefix nothing else uses; its keys are deleted afterwards."""
    return throwaway_redis_prefix(REDIS_URL, "bench")


def p50_p99_ms(samples_s: Sequence[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples_s, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[98] * 1000


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(h) for h in headers]] + [[f"{c:,.1f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))
