"""The processes the manifests run, started as the image starts them: `flowyard <command>`.

Each must keep its liveness heartbeat fresh while it runs and stop cleanly on SIGTERM sent to
the very process the container starts (it is PID 1 in the pod: exec form, no shell between).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import FLOWYARD, wait_for
from worker.liveness import check_heartbeat

pytestmark = pytest.mark.slow


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen([FLOWYARD, *argv], env=env, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)
        pytest.fail(f"did not stop within 60s of SIGTERM:\n{log.read_text()[-3000:]}")


@pytest.mark.parametrize("argv", [
    ["worker", "-Q", "noop,trigger", "-c", "1"],
    ["worker", "-Q", "noop,trigger", "-c", "2", "--pool", "threads"],
    ["scheduler"],
], ids=["worker", "worker-threads", "scheduler"])
def test_process_keeps_its_heartbeat_fresh_and_stops_on_sigterm(
    tmp_path: Path, private_database_url: str, redis_url: str, argv: list[str]
) -> None:
    heartbeat = tmp_path / "run" / "heartbeat"
    log = tmp_path / "process.log"
    env = {
        **os.environ,
        "DATABASE_URL": private_database_url,
        "REDIS_URL": redis_url,
        "FLOWYARD_WORKER_HEARTBEAT_FILE": str(heartbeat),
        "LOG_FORMAT": "console",
    }
    process = _start(argv, env, log)
    try:
        wait_for(lambda: heartbeat.exists() or process.poll() is not None, 90,
                  "the first heartbeat")
        assert process.poll() is None, f"exited early:\n{log.read_text()[-3000:]}"
        first = heartbeat.stat().st_mtime_ns
        # Both touch at least every 10 s (worker timer; scheduler: every reconcile pass).
        wait_for(lambda: heartbeat.exists() and heartbeat.stat().st_mtime_ns != first, 30,
                  "a second heartbeat")
        check_heartbeat(str(heartbeat), max_age_seconds=60)
        probe = subprocess.run([FLOWYARD, "worker-health", "--max-age", "60"], env=env,
                               capture_output=True, text=True, timeout=60)
        assert probe.returncode == 0, probe.stderr
    finally:
        if process.poll() is None:
            code = _stop(process, log)
        else:
            code = process.returncode
    assert code == 0, f"exit {code}:\n{log.read_text()[-3000:]}"
    if argv[0] == "worker":
        assert not heartbeat.exists(), "the worker's warm shutdown removes its heartbeat"
