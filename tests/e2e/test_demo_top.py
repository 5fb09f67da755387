"""`make top` as a person sees it: the live view in a real terminal (tmux), read off the screen
while a breaker trips and recovers."""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from breaker.v1 import breaker_pb2, breaker_pb2_grpc
from google.protobuf import duration_pb2, field_mask_pb2

from tests.support.processes import REPO, ServiceProcess, free_port

DEPENDENCY = "apollo"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[dict[str, str]]:
    breaker, job, campaign = free_port(), free_port(), free_port()
    peers = {"BREAKER_TARGET": f"127.0.0.1:{breaker}", "JOB_TARGET": f"127.0.0.1:{job}", "CAMPAIGN_TARGET": f"127.0.0.1:{campaign}"}
    services = [
        ServiceProcess("breaker_svc", breaker, {"BREAKER_PORT": str(breaker), "BREAKER_STORE": "memory"}, tmp_path),
        ServiceProcess("job_svc", job, {**peers, "JOB_PORT": str(job), "JOB_DATABASE_URL": f"sqlite:///{tmp_path / 'job.db'}"}, tmp_path),
        ServiceProcess("campaign_svc", campaign, {**peers, "CAMPAIGN_PORT": str(campaign),
                       "CAMPAIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'campaign.db'}"}, tmp_path),
    ]
    try:
        for service in services:
            service.start()
        yield peers
    finally:
        for service in services:
            service.stop()


class Terminal:
    """A tmux session running one command on a 120x40 screen."""

    def __init__(self, name: str, command: str, env: dict[str, str]) -> None:
        self.name = name
        exports = " ".join(f"{key}={value}" for key, value in env.items())
        subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40", f"env {exports} {command}"], check=True)

    def screen(self) -> str:
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", self.name], check=True, capture_output=True, text=True).stdout

    def wait_for_row(self, first_word: str, word: str, timeout_s: float = 20.0) -> str:
        """Waits until a line of the screen that mentions `first_word` also shows `word`, as a
        whole word (so OPEN is not read off HALF_OPEN)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            screen = self.screen()
            for line in screen.splitlines():
                words = line.replace("│", " ").replace("┃", " ").split()
                if first_word in words and word in words:
                    return screen
            time.sleep(0.2)
        raise AssertionError(f"no row with {first_word} showing {word} within {timeout_s}s; screen:\n{self.screen()}")

    def close(self) -> None:
        """Ends the session and what runs in it: killing a tmux session hangs up its terminal,
        but a process started with SIGHUP ignored (as under nohup, or some CI runners) would
        outlive it, so each one also gets the SIGTERM that ends `make top`."""
        running = self._processes()
        subprocess.run(["tmux", "kill-session", "-t", self.name], check=False)
        for pid in running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive := [pid for pid in running if _running(pid)]:
            assert time.monotonic() < deadline, f"processes of the terminal outlived it: {alive}"
            time.sleep(0.1)

    def _processes(self) -> list[int]:
        """The pane's process and all its descendants."""
        panes = subprocess.run(["tmux", "list-panes", "-t", self.name, "-F", "#{pane_pid}"], capture_output=True, text=True)
        found, pending = [], [int(pid) for pid in panes.stdout.split()]
        while pending:
            pid = pending.pop()
            found.append(pid)
            for children in Path(f"/proc/{pid}/task").glob("*/children"):
                pending += [int(child) for child in children.read_text().split()]
        return found


def _running(pid: int) -> bool:
    """Still there and not a zombie (one whose parent has yet to reap it is gone for good)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def trip_and_recover(breakers: breaker_pb2_grpc.BreakerServiceStub, terminal: Terminal) -> None:
    breakers.ConfigureBreaker(breaker_pb2.ConfigureBreakerRequest(
        dependency=DEPENDENCY,
        config=breaker_pb2.BreakerConfig(minimum_calls=2, sliding_window_size=2, open_wait_duration=duration_pb2.Duration(seconds=1),
                                         half_open_permitted_calls=1),
        update_mask=field_mask_pb2.FieldMask(paths=["minimum_calls", "sliding_window_size", "open_wait_duration", "half_open_permitted_calls"]),
    ))
    for _ in range(2):
        breakers.RecordOutcome(breaker_pb2.RecordOutcomeRequest(dependency=DEPENDENCY, result=breaker_pb2.CALL_RESULT_FAILURE))
    terminal.wait_for_row(DEPENDENCY, "OPEN")
    deadline = time.monotonic() + 10
    while not breakers.Acquire(breaker_pb2.AcquireRequest(dependency=DEPENDENCY)).permitted:  # HALF_OPEN after the wait
        assert time.monotonic() < deadline, "the breaker never went half-open"
        time.sleep(0.2)
    breakers.RecordOutcome(breaker_pb2.RecordOutcomeRequest(dependency=DEPENDENCY, result=breaker_pb2.CALL_RESULT_SUCCESS))
    terminal.wait_for_row(DEPENDENCY, "CLOSED")


def test_make_top_shows_a_breaker_open_then_closed_on_a_real_terminal(stack: dict[str, str]) -> None:
    terminal = Terminal(f"top-{os.getpid()}", f"make -s -C {REPO} top", {**stack, "PATH": os.environ["PATH"]})
    try:
        terminal.wait_for_row("jobs", "pending")  # the view is up
        with grpc.insecure_channel(stack["BREAKER_TARGET"]) as channel:
            trip_and_recover(breaker_pb2_grpc.BreakerServiceStub(channel), terminal)
    finally:
        terminal.close()
