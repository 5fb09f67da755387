"""Applies a service's Alembic migrations without starting it (e.g. a Kubernetes init container):

    python -m services.migrate job_svc        # uses JOB_DATABASE_URL
    python -m services.migrate campaign_svc   # uses CAMPAIGN_DATABASE_URL

The services also apply pending migrations themselves on start, so this is optional.
"""

import asyncio
import importlib
import os
import sys
from pathlib import Path

from services.db import upgrade_schema

DATABASE_URL_VARIABLES = {"job_svc": "JOB_DATABASE_URL", "campaign_svc": "CAMPAIGN_DATABASE_URL"}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[1] not in DATABASE_URL_VARIABLES:
        print(f"usage: python -m services.migrate {{{'|'.join(DATABASE_URL_VARIABLES)}}}", file=sys.stderr)
        return 2
    service = argv[1]
    url = os.environ.get(DATABASE_URL_VARIABLES[service])
    if not url:
        print(f"{DATABASE_URL_VARIABLES[service]} is not set", file=sys.stderr)
        return 2
    migrations_dir = Path(importlib.import_module(service).__file__).parent / "migrations"
    asyncio.run(upgrade_schema(url, migrations_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
