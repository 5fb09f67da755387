"""`python -m campaign_svc`: serves CampaignService until SIGTERM or SIGINT."""

import asyncio
import sys

from campaign_svc.app import CampaignApp
from campaign_svc.settings import CampaignSettings
from services.config import ConfigError
from services.logging import configure_logging


async def main() -> None:
    settings = CampaignSettings.from_env()
    configure_logging("campaign_svc", settings.server.log_level)
    app = CampaignApp(settings)
    await app.start()
    await app.host.run_until_signalled([app.close])


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except ConfigError as error:
        print(f"campaign_svc: {error}", file=sys.stderr)
        sys.exit(2)
