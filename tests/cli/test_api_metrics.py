"""`flowyard api` under gunicorn: a scrape of any process reports every process's requests."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.cli.processes import (
    clean_env,
    descendants,
    flowyard,
    free_port,
    gone,
    http_ok,
    processes_that_counted,
    scrape,
    started,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROUND = 40  # /healthz calls per round, each on a connection of its own


def _healthz_count(url: str) -> float:
    # A new connection each time, so the scrapes too land on either process.
    return sum(value for (name, labels), value
               in scrape(f"{url}/metrics", "flowyard_http_requests_total").items()
               if name == "flowyard_http_requests_total" and dict(labels)["route"] == "/healthz")


@contextmanager
def _api_of_two_processes(tmp_path: Path, database_url: str, redis_url: str) -> Iterator[
        tuple[subprocess.Popen[bytes], str, Path, Path]]:
    """`flowyard api` of two processes, ready: the process, its URL, its run's metrics
    directory and its log."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    log = tmp_path / "api.log"
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, TMPDIR=str(temp))
    url = f"http://127.0.0.1:{port}"
    with started(flowyard("api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
                          "--threads", "2"), env, log) as api:
        wait_for(lambda: http_ok(f"{url}/readyz"), 120, "the API's /readyz", alive=api)
        yield api, url, next(temp.glob("flowyard-api-metrics-*")), log


def test_requests_served_by_two_processes_are_summed_in_every_scrape(
        tmp_path: Path, database_url: str, redis_url: str) -> None:
    with _api_of_two_processes(tmp_path, database_url, redis_url) as (api, url, metrics_dir,
                                                                      log):
        sent = 0
        # The premise: both processes answered some of the calls. Which one accepts a new
        # connection is the kernel's choice, so send rounds until both have.
        for _ in range(10):
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(
                    lambda _: requests.get(f"{url}/healthz", timeout=10).status_code,
                    range(ROUND)))
            assert answers == [200] * ROUND
            sent += ROUND
            if len(processes_that_counted(metrics_dir)) >= 2:
                break
        assert len(processes_that_counted(metrics_dir)) >= 2, tail(log)
        assert [_healthz_count(url) for _ in range(6)] == [sent] * 6
    assert api.returncode == 0, tail(log)
    assert not metrics_dir.exists(), "the run's metrics directory was left behind"


def test_a_reload_replaces_the_processes_and_keeps_their_metrics_directory(
        tmp_path: Path, database_url: str, redis_url: str) -> None:
    """SIGHUP is gunicorn's reload: new processes start, the old ones leave by SystemExit,
    through the block that made the directory. Before, the first to leave removed it, the
    new ones failed to boot on its absence, and gunicorn stopped the whole API."""
    with _api_of_two_processes(tmp_path, database_url, redis_url) as (api, url, metrics_dir,
                                                                      log):
        before = descendants(api.pid)
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        api.send_signal(signal.SIGHUP)
        wait_for(lambda: not gone(before), 60, "the old processes to leave", alive=api)
        wait_for(lambda: len(descendants(api.pid)) == 2, 60, "two new processes", alive=api)
        assert metrics_dir.is_dir(), tail(log)
        # The new processes count beside the old ones' files.
        assert requests.get(f"{url}/healthz", timeout=10).status_code == 200
        assert wait_for(lambda: _healthz_count(url) == 2, 30, "both calls counted", alive=api)
        assert api.poll() is None, tail(log)
    assert api.returncode == 0, tail(log)
    assert not metrics_dir.exists(), "the run's metrics directory was left behind"
