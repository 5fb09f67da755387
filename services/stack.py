"""`make run`: the whole stack on the embedded default, one command, nothing to install.

Starts breaker_svc (in-memory breakers), job_svc and campaign_svc (SQLite files under var/) as
three processes on their default ports. Ctrl-C or SIGTERM stops all three gracefully; if one
exits on its own, the others are stopped too. The services run in their own process group, so a
terminal's Ctrl-C reaches only this launcher, which sends each exactly one SIGTERM (a second
signal could land after a service's clean stop, while it exits, and kill it). Exits 0 when all
three stopped cleanly.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PORTS = {"BREAKER_PORT": "50051", "CAMPAIGN_PORT": "50052", "JOB_PORT": "50053"}


def stack(environ: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    """Each service with its embedded defaults; the environment overrides any of them, and
    the peers' addresses follow the ports chosen."""
    ports = {name: environ.get(name, default) for name, default in DEFAULT_PORTS.items()}
    peers = {
        "BREAKER_TARGET": f"127.0.0.1:{ports['BREAKER_PORT']}",
        "JOB_TARGET": f"127.0.0.1:{ports['JOB_PORT']}",
    }
    data = ROOT / "var"
    return [
        ("breaker_svc", {"BREAKER_STORE": "memory"}),
        ("job_svc", {**peers, "JOB_DATABASE_URL": f"sqlite:///{data / 'job.db'}"}),
        ("campaign_svc", {**peers, "CAMPAIGN_DATABASE_URL": f"sqlite:///{data / 'campaign.db'}"}),
    ]


def main() -> int:
    (ROOT / "var").mkdir(exist_ok=True)
    processes = [
        subprocess.Popen([sys.executable, "-m", module], cwd=ROOT, env={**defaults, **os.environ}, process_group=0)
        for module, defaults in stack(dict(os.environ))
    ]
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopping and all(p.poll() is None for p in processes):
        time.sleep(0.2)
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    # A service killed by a signal has a negative code: any failure makes the launcher fail.
    return max(abs(process.wait()) for process in processes)


if __name__ == "__main__":
    sys.exit(main())
