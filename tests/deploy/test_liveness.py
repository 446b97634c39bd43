"""Worker liveness: the heartbeat check, the `flowyard worker-health` probe, and a real worker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from tests.deploy.conftest import FLOWYARD, wait_for
from worker.liveness import HeartbeatError, check_heartbeat, touch_heartbeat


def test_fresh_heartbeat_passes(tmp_path: Path) -> None:
    path = tmp_path / "beat"
    touch_heartbeat(str(path))
    os.utime(path, (1_000_000.0, 1_000_000.0))
    beat = check_heartbeat(str(path), max_age_seconds=60, now=1_000_030.0)
    assert beat.age_seconds == pytest.approx(30.0)


def test_stale_heartbeat_fails(tmp_path: Path) -> None:
    path = tmp_path / "beat"
    touch_heartbeat(str(path))
    os.utime(path, (1_000_000.0, 1_000_000.0))
    with pytest.raises(HeartbeatError, match="61s old"):
        check_heartbeat(str(path), max_age_seconds=60, now=1_000_061.0)


def test_missing_heartbeat_fails(tmp_path: Path) -> None:
    with pytest.raises(HeartbeatError, match="does not exist"):
        check_heartbeat(str(tmp_path / "nothing"), max_age_seconds=60)


def test_touch_creates_folder(tmp_path: Path) -> None:
    path = tmp_path / "run" / "flowyard" / "beat"
    touch_heartbeat(str(path))
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["beat"]


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWYARD, "worker-health", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_probe_command_exit_codes(tmp_path: Path) -> None:
    path = tmp_path / "beat"
    assert _probe("--file", str(path)).returncode == 1
    touch_heartbeat(str(path))
    fresh = _probe("--file", str(path), "--max-age", "60")
    assert fresh.returncode == 0, fresh.stderr
    old = time.time() - 3600
    os.utime(path, (old, old))
    stale = _probe("--file", str(path), "--max-age", "60")
    assert stale.returncode == 1
    assert "old" in stale.stderr


def test_probe_reads_the_settings_variable(tmp_path: Path) -> None:
    path = tmp_path / "beat"
    touch_heartbeat(str(path))
    env = {"FLOWYARD_WORKER_HEARTBEAT_FILE": str(path)}
    assert _probe(env=env).returncode == 0
    path.unlink()
    assert _probe(env=env).returncode == 1


_APP_MODULE = """
from celery import Celery
from worker.liveness import install_heartbeat

app = Celery("liveness_probe_test", broker={broker!r})
app.conf.worker_hijack_root_logger = False
install_heartbeat(app, {path!r}, interval_seconds=0.2)
"""


@pytest.mark.slow
@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_real_worker_touches_heartbeat_and_removes_it_on_sigterm(
    tmp_path: Path, redis_url: str, pool: str
) -> None:
    heartbeat = tmp_path / "run" / "heartbeat"
    module = tmp_path / "liveness_app.py"
    module.write_text(textwrap.dedent(_APP_MODULE.format(broker=redis_url, path=str(heartbeat))))
    queue = f"liveness-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "celery", "-A", "liveness_app", "worker", "-P", pool,
            "-c", "1", "-Q", queue, "--without-gossip", "--without-mingle", "-l", "WARNING"]
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_for(heartbeat.exists, 60, "the first heartbeat")
        first = heartbeat.stat().st_mtime_ns
        wait_for(lambda: heartbeat.exists() and heartbeat.stat().st_mtime_ns != first, 30,
                  "a later heartbeat (periodic touch)")
        check_heartbeat(str(heartbeat), max_age_seconds=5)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, stderr
    assert not heartbeat.exists(), "warm shutdown must remove the heartbeat file"
