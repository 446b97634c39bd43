"""`flowyard worker --metrics-port`: node tasks counted in the pool's processes, summed in a
scrape of the worker's main process."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cli.processes import (
    admin_token,
    clean_env,
    flowyard,
    free_port,
    http_ok,
    processes_that_counted,
    scrape,
    started,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _node(node_id: str, node_type: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0},
            "data": {"label": node_id, **({"config": config} if config else {})}}


def _chain(name: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    edges = [{"id": f"e{i}", "source": a["id"], "target": b["id"]}
             for i, (a, b) in enumerate(zip(nodes, nodes[1:], strict=False))]
    return {"name": name, "workflow_data": {"nodes": list(nodes), "edges": edges}}


WORKFLOWS = {
    "completes": _chain("metrics: completes", _node("start", "trigger"), _node("a", "noop"),
                        _node("b", "noop")),
    # `input.missing` does not exist: evaluating it fails the step (no retries by default).
    "fails": _chain("metrics: fails", _node("start", "trigger"),
                    _node("check", "condition", {"expression": "input.missing > 1"})),
    "waits": _chain("metrics: waits", _node("start", "trigger"),
                    _node("ask", "approval", {"approver_role": "admin", "message": "go?"})),
}
# Each run is done when its last step is in this state.
ENDS = {"completes": "completed", "fails": "failed", "waits": "waiting_approval"}


def _run(url: str, token: str, name: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    created = requests.post(f"{url}/api/workflows", json=WORKFLOWS[name], headers=headers,
                            timeout=10)
    assert created.status_code == 201, created.text
    started_ = requests.post(f"{url}/api/workflows/{created.json()['id']}/execute",
                             json={"input": {}}, headers=headers, timeout=10)
    assert started_.status_code == 202, started_.text
    details_url = f"{url}/api/workflow-instances/{started_.json()['id']}/details"
    last = WORKFLOWS[name]["workflow_data"]["nodes"][-1]["id"]

    def ended() -> bool:
        steps = requests.get(details_url, headers=headers, timeout=10).json()["steps"]
        return any(s["node_id"] == last and s["status"] == ENDS[name] for s in steps)

    wait_for(ended, 60, f"the {name!r} instance to be {ENDS[name]}")


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return scrape(url, "flowyard_worker_")


def _tasks(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """flowyard_worker_tasks_total as {"type/outcome": count}."""
    return {dict(labels)["type"] + "/" + dict(labels)["outcome"]: value
            for (name, labels), value in samples.items()
            if name == "flowyard_worker_tasks_total"}


def _pool_children(pid: int) -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process(pid).children()}


def test_a_scrape_sums_the_tasks_every_pool_process_ran(
        tmp_path: Path, own_database_url: str, own_redis_url: str) -> None:
    # Databases of its own: only this test's tasks reach its worker, what other tests left
    # in the session's queues stays there for the workers of theirs, and the instance it
    # leaves waiting for an approval takes no admission slot of theirs.
    database_url, redis_url = own_database_url, own_redis_url
    temp = tmp_path / "tmp"
    temp.mkdir()
    api_port, metrics_port = free_port(), free_port()
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url, TMPDIR=str(temp))
    api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
    url, metrics_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    with (
        started(flowyard("api", "--host", "127.0.0.1", "--port", str(api_port)), env,
                api_log) as api,
        started(flowyard("worker", "-c", "2", "-n", "metrics@%h", "--metrics-port",
                         str(metrics_port), "--metrics-address", "127.0.0.1"), env,
                worker_log) as worker,
    ):
        wait_for(lambda: http_ok(f"{url}/readyz"), 120, "the API's /readyz", alive=api)
        wait_for(lambda: " ready." in tail(worker_log), 120, "the worker to be ready",
                 alive=worker)
        assert _scrape(metrics_url) == {}, "counts before any task ran"
        token = admin_token(database_url)
        for name in WORKFLOWS:
            _run(url, token, name)
        metrics_dir = next(temp.glob("flowyard-worker-metrics-*"))
        # The premise of "summed": both pool processes counted. Which one takes a task is
        # the pool's choice, so run more until both have.
        completed_runs = 1
        while len(processes_that_counted(metrics_dir)) < 2 and completed_runs < 10:
            _run(url, token, "completes")
            completed_runs += 1
        assert processes_that_counted(metrics_dir) == {str(pid) for pid in
                                                        _pool_children(worker.pid)}

        runs = len(WORKFLOWS) - 1 + completed_runs
        expected = {"trigger/succeeded": runs, "noop/succeeded": 2 * completed_runs,
                    "condition/failed": 1, "approval/suspended": 1}
        # A task is counted just after its commit: the last one may lag its instance's end.
        wait_for(lambda: _tasks(_scrape(metrics_url)) == expected, 10, "every task counted")
        samples = _scrape(metrics_url)
        assert _tasks(samples) == expected, tail(worker_log)
        durations = {dict(labels)["type"]: value for (name, labels), value in samples.items()
                     if name == "flowyard_worker_task_duration_seconds_count"}
        assert durations == {"trigger": runs, "noop": 2 * completed_runs, "condition": 1,
                             "approval": 1}
        slowest = max(value for (name, _), value in samples.items()
                      if name == "flowyard_worker_task_duration_seconds_sum")
        assert 0 < slowest < 60

        # A child that dies is replaced; what it counted stays in the sum.
        child = min(_pool_children(worker.pid))
        os.kill(child, signal.SIGKILL)
        wait_for(lambda: child not in _pool_children(worker.pid)
                 and len(_pool_children(worker.pid)) == 2, 60, "a new pool process")
        _run(url, token, "completes")
        wait_for(lambda: _tasks(_scrape(metrics_url)).get("noop/succeeded")
                 == 2 * completed_runs + 2, 10, "the new pool process's tasks counted")
    assert worker.returncode == 0, tail(worker_log)
    assert not metrics_dir.exists(), "the run's metrics directory was left behind"


def test_a_port_in_use_stops_the_worker_with_a_message(tmp_path: Path, database_url: str,
                                                       redis_url: str) -> None:
    import socket

    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        log = tmp_path / "worker.log"
        with started(flowyard("worker", "--metrics-port", str(port), "--metrics-address",
                              "127.0.0.1"), env, log) as worker:
            worker.wait(60)
    assert worker.returncode == 1
    assert f"cannot serve metrics on 127.0.0.1:{port}" in tail(log), tail(log)
    assert "choose another --metrics-port" in tail(log)
