"""`python -m breaker_svc`: the breaker service (settings: breaker_svc/settings.py)."""

import sys

from breaker_svc.app import BreakerApp
from breaker_svc.settings import BreakerSettings
from services.config import ServerSettings
from services.server import run_service

if __name__ == "__main__":
    sys.exit(
        run_service(
            "breaker_svc", lambda: BreakerApp(BreakerSettings.from_env(), ServerSettings.from_env("BREAKER", 50051))
        )
    )
