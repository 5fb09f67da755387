"""`python -m campaign_svc`: the campaign service (settings: campaign_svc/settings.py)."""

import sys

from campaign_svc.app import CampaignApp
from campaign_svc.settings import CampaignSettings
from services.server import run_service

if __name__ == "__main__":
    sys.exit(run_service("campaign_svc", lambda: CampaignApp(CampaignSettings.from_env())))
