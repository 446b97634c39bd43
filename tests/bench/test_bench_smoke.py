"""The benchmark runner still works end to end (few iterations; asserts no speed at all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_smoke_run_reports_every_scenario() -> None:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "bench", "--smoke"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "machine speed probe:" in result.stdout.splitlines()[1]
    assert "process hand-off probe:" in result.stdout.splitlines()[2]
    for scenario in ("0. orchestrator cost per step", "1. hop latency p50", "2. throughput",
                     "2. CPU per step, all processes",
                     "3. REST execute->completed p50", "4. POST /execute throughput",
                     "4. POST /execute CPU per call, all processes",
                     "4. POST /execute CPU per call, in bare hops",
                     "4. POST /execute at a fixed 50 req/s, p99 (open loop)",
                     "4. POST /execute CPU per call, API in-process",
                     "4. first page of", "5. fan-out/fan-in", "5. worker RSS",
                     "save 1000 nodes / 5000 edges"):
        assert scenario in result.stdout, f"{scenario!r} missing from:\n{result.stdout}"


@pytest.mark.slow
def test_a_terminated_run_stops_every_process_it_started() -> None:
    import signal
    import time

    import psutil

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    runner = subprocess.Popen([sys.executable, "-m", "bench", "--smoke", "--only", "fan"],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        assert runner.stdout is not None
        # The cluster is up once the first scenario starts.
        for line in runner.stdout:
            if line.startswith("running fan"):
                break
        else:
            pytest.fail("the bench ended before its cluster started")
        started = psutil.Process(runner.pid).children(recursive=True)
        assert len(started) >= 5  # API, workers, scheduler, baseline workers
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
    deadline = time.monotonic() + 30
    alive = started
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    assert not alive, [" ".join(p.cmdline()) for p in alive]
