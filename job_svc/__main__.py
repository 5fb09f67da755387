"""`python -m job_svc`: the job queue service (settings: job_svc/settings.py)."""

import sys

from job_svc.app import JobApp
from job_svc.settings import JobSettings
from services.server import run_service

if __name__ == "__main__":
    sys.exit(run_service("job_svc", lambda: JobApp(JobSettings.from_env())))
