"""`python -m job_svc`: the job queue service (settings: job_svc/settings.py)."""

import asyncio
import sys

from job_svc.app import JobApp
from job_svc.settings import JobSettings
from services.config import ConfigError
from services.logging import configure_logging


async def serve(settings: JobSettings) -> None:
    app = JobApp(settings)
    await app.start()
    await app.host.run_until_signalled([app.close])


def main() -> int:
    try:
        settings = JobSettings.from_env()
    except ConfigError as error:
        print(f"job_svc: {error}", file=sys.stderr)
        return 2
    configure_logging("job_svc", settings.server.log_level)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
