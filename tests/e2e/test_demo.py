"""`make demo` without a terminal, as CI and a pipe see it: the whole lead-generation story with
real processes (stack, simulated providers, workers), its timeline, and a summary that holds the
product to its promise."""

import json
import re
import os
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO, ServiceProcess, free_port


def test_the_demo_pauses_through_an_outage_and_finishes_every_job_without_spending_an_attempt(tmp_path: Path) -> None:
    ports = {name: str(free_port()) for name in ("BREAKER_PORT", "JOB_PORT", "CAMPAIGN_PORT", "PROVIDERS_PORT", "JOB_METRICS_PORT")}
    run = subprocess.run(
        [sys.executable, "-m", "demo", "--campaigns", "2", "--leads", "20", "--workers", "2", "--outage-after", "3",
         "--outage", "6", "--timeout", "90", "--data-dir", str(tmp_path / "demo")],
        cwd=REPO, env={**os.environ, **ports}, capture_output=True, text=True, timeout=150,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "breaker perplexity CLOSED -> OPEN" in output, output
    assert "-> CLOSED" in output.split("provider perplexity is back UP")[1], output
    tail = run.stdout[run.stdout.rindex("\njobs done") + 1:]
    summary = dict(re.findall(r"^(\S.*?)  +(\S.*)$", tail, re.M))
    assert summary["jobs done"].startswith("42 of 42"), output
    assert summary["attempts spent"].startswith("0 ") and summary["jobs lost"].startswith("0 "), output
    paused, resumed = (int(n) for n in re.findall(r"\d+", summary["jobs paused/resumed"])[:2])
    assert paused > 0 and resumed >= paused, output
    assert summary["RESULT"] == "OK", output


def test_the_readme_commands_for_the_simulated_providers_work_as_written(tmp_path: Path) -> None:
    port = free_port()
    providers = ServiceProcess("demo.providers", port, {"PROVIDERS_PORT": str(port)}, tmp_path).start()
    try:
        section = (REPO / "README.md").read_text().split("## The lead-generation demo", 1)[1]
        block = section.split("```sh\n")[2].split("```", 1)[0].replace("\\\n", " ")
        commands = [line.replace("localhost:50060", f"localhost:{port}") for line in block.splitlines() if line.startswith("grpcurl")]
        assert len(commands) == 2
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        outputs = [subprocess.run(command, shell=True, env=env, capture_output=True, text=True, timeout=30) for command in commands]
        assert all(out.returncode == 0 for out in outputs), [out.stderr for out in outputs]
        assert '"name": "perplexity"' in outputs[0].stdout
        assert json.loads(outputs[1].stdout)["provider"]["behaviour"]["failure_rate"] == 0.6
    finally:
        providers.stop()
