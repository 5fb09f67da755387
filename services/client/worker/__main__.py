"""`python -m services.client.worker MODULE:OBJECT` (also installed as `graceful-worker`): runs
the `Worker` that MODULE defines as OBJECT until SIGTERM or SIGINT, then drains and exits 0.

Where the services are comes from flags or the environment: `--job-target` / JOB_TARGET
(default 127.0.0.1:50053), `--breaker-target` / BREAKER_TARGET (default 127.0.0.1:50051),
SERVICE_TOKEN (sent as the bearer token), and TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE
(TLS and mTLS, see `services.client.channel`). The current directory is on the import path,
as with `python -m`.
"""

import argparse
import asyncio
import importlib
import logging
import os
import sys

import grpc

from services.client.breakers import BreakerClient
from services.client.jobs import JobClient
from services.client.worker.runner import MAX_CONCURRENCY, Worker

log = logging.getLogger("services.client.worker")


def load_worker(path: str) -> Worker:
    """The object at `module:attribute` (dots allowed in both); it must be a Worker."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise SystemExit(f"expected MODULE:OBJECT, got {path!r}")
    try:
        found: object = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name.split(".")[0] and error.name != module_name:
            raise  # the module itself failed to import something
        raise SystemExit(f"no module {module_name!r} here ({os.getcwd()}) or on PYTHONPATH") from None
    for name in attribute.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise SystemExit(f"{module_name} has no {attribute!r}") from None
    if not isinstance(found, Worker):
        raise SystemExit(f"{path} is a {type(found).__name__}, not a services.client.Worker")
    return found


def concurrency(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"must be 1..{MAX_CONCURRENCY}")
    return value


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="graceful-worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("worker", metavar="MODULE:OBJECT", help="the Worker to run, e.g. myapp.workers:worker")
    parser.add_argument("--job-target", default=os.environ.get("JOB_TARGET", "127.0.0.1:50053"), help="job_svc (env JOB_TARGET)")
    parser.add_argument(
        "--breaker-target", default=os.environ.get("BREAKER_TARGET", "127.0.0.1:50051"), help="breaker_svc (env BREAKER_TARGET)"
    )
    parser.add_argument("--concurrency", type=concurrency, help="handlers run at once (default: the Worker's)")
    parser.add_argument("--worker-id", help="the id leases are held under (default: the Worker's)")
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "info"), choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


async def serve(worker: Worker, job_target: str, breaker_target: str) -> None:
    token = os.environ.get("SERVICE_TOKEN") or None
    async with JobClient(job_target, token=token) as jobs, BreakerClient(breaker_target, token=token) as breakers:
        log.info("worker_started id=%s job_types=%s jobs=%s breakers=%s", worker.worker_id, ",".join(worker.handlers), job_target, breaker_target)
        await worker.run(jobs, breakers)
    log.info("worker_stopped id=%s", worker.worker_id)


def main(argv: list[str] | None = None) -> int:
    arguments = parse(argv)
    logging.basicConfig(level=arguments.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    worker = load_worker(arguments.worker)
    if arguments.concurrency is not None:
        worker.concurrency = arguments.concurrency
    if arguments.worker_id is not None:
        worker.worker_id = arguments.worker_id
    try:
        asyncio.run(serve(worker, arguments.job_target, arguments.breaker_target))
    except grpc.aio.AioRpcError as error:  # e.g. UNAUTHENTICATED: retrying cannot help
        log.error("worker_failed code=%s details=%s", error.code().name, error.details())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
