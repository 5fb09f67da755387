"""Alembic environment of job_svc: migrates online over the service's async engine."""

from job_svc.tables import metadata
from services.db import run_migrations

run_migrations(metadata)
