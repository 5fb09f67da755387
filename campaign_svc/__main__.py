"""`python -m campaign_svc`: serves CampaignService until SIGTERM or SIGINT (settings:
campaign_svc/settings.py)."""

import asyncio
import sys

from campaign_svc.app import CampaignApp
from campaign_svc.settings import CampaignSettings
from services.config import ConfigError
from services.logging import configure_logging


async def serve(settings: CampaignSettings) -> None:
    app = CampaignApp(settings)
    await app.start()
    await app.host.run_until_signalled([app.close])


def main() -> int:
    try:
        settings = CampaignSettings.from_env()
    except ConfigError as error:
        print(f"campaign_svc: {error}", file=sys.stderr)
        return 2
    configure_logging("campaign_svc", settings.server.log_level)
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
