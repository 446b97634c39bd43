"""Flower as the manifests run it: basic auth from FLOWER_BASIC_AUTH, probes on /healthcheck."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import FLOWYARD, wait_for

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_flower_requires_basic_auth_but_probes_need_none(tmp_path: Path, redis_url: str) -> None:
    port = _free_port()
    log = tmp_path / "flower.log"
    env = {**os.environ, "REDIS_URL": redis_url, "FLOWER_BASIC_AUTH": "admin:s3cret",
           "LOG_FORMAT": "console"}
    env.pop("DATABASE_URL", None)  # the Flower pod gets no database credentials
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [FLOWYARD, "flower", "--address", "127.0.0.1", "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: process.poll() is not None or _answers(f"{base}/healthcheck"), 90,
                  "Flower's /healthcheck")
        assert process.poll() is None, log.read_text()[-3000:]
        assert requests.get(f"{base}/", timeout=10).status_code == 401
        # Prometheus scrapes Celery metrics without the dashboard's password.
        assert requests.get(f"{base}/metrics", timeout=10).status_code == 200
        assert requests.get(f"{base}/workers", auth=("admin", "wrong"), timeout=10
                            ).status_code == 401
        assert requests.get(f"{base}/workers", auth=("admin", "s3cret"), timeout=10
                            ).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
