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
    for scenario in ("0. orchestrator cost per step", "1. hop latency p50", "2. throughput",
                     "3. REST execute->completed p50", "4. POST /execute throughput",
                     "4. first page of", "5. fan-out/fan-in", "5. worker RSS",
                     "save 1000 nodes / 5000 edges"):
        assert scenario in result.stdout, f"{scenario!r} missing from:\n{result.stdout}"
