"""Replicas starting together on a fresh PostgreSQL database take turns to migrate."""

import os
import subprocess
import sys

import pytest

from tests.support.processes import REPO


@pytest.mark.parametrize("service,variable", [("job_svc", "JOB_DATABASE_URL"), ("campaign_svc", "CAMPAIGN_DATABASE_URL")])
def test_concurrent_migrations_of_one_database_all_succeed(postgres_url: str, service: str, variable: str) -> None:
    env = {**os.environ, variable: postgres_url}
    runs = [
        subprocess.Popen([sys.executable, "-m", "services.migrate", service], cwd=REPO, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=120)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], outputs
