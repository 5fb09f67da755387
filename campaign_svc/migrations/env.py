"""Alembic environment of campaign_svc: the shared online migration over the async engine."""

from campaign_svc.tables import metadata
from services.db import run_migrations

run_migrations(metadata)
