"""`flowyard api`, two `flowyard worker`s and `flowyard scheduler` as separate processes.

They share the machine's PostgreSQL and Redis (the session's database and Redis index) and
are configured only through the environment, as in Kubernetes.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.cli.processes import (
    EXAMPLES,
    REPO,
    admin_token,
    clean_env,
    flowyard,
    free_port,
    http_ok,
    started,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def test_api_two_workers_and_scheduler_complete_a_workflow(
        tmp_path: Path, database_url: str, redis_url: str) -> None:
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                    FLOWYARD_RECONCILE_INTERVAL="0.5")
    port = free_port()
    api_log, scheduler_log = tmp_path / "api.log", tmp_path / "scheduler.log"
    worker_logs = [tmp_path / "worker-1.log", tmp_path / "worker-2.log"]
    token = admin_token(database_url)
    with (
        started(flowyard("api", "--host", "127.0.0.1", "--port", str(port)), env,
                api_log) as api,
        started(flowyard("worker", "-c", "1", "-n", "cli-w1@%h"), env, worker_logs[0]),
        started(flowyard("worker", "-c", "1", "-n", "cli-w2@%h"), env, worker_logs[1]),
        started(flowyard("scheduler"), env, scheduler_log),
    ):
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: http_ok(f"{url}/readyz"), 120, "the API's /readyz", alive=api)
        for log in worker_logs:
            wait_for(lambda log=log: " ready." in tail(log), 120, f"{log.name} to be ready")
        result = subprocess.run(
            flowyard("run", str(EXAMPLES / "vulnerability-triage.json"), "--input",
                     '{"title": "Old TLS", "severity": 3}', "--wait", "--timeout", "180"),
            env=clean_env(FLOWYARD_URL=url, FLOWYARD_TOKEN=token),
            capture_output=True, text=True, timeout=240, cwd=REPO,
        )
        logs = "".join(f"\n== {p.name}\n{tail(p)}" for p in [api_log, scheduler_log,
                                                              *worker_logs])
        assert result.returncode == 0, result.stdout + result.stderr + logs
        rows = _table_rows(result.stdout)
        # Severity 3 is not critical: the condition routes to the backlog, past the approval.
        assert rows["backlog"] == "completed" and rows["critical"] == "completed"
        assert rows["approve"] == "skipped" and rows["page"] == "skipped"

        _critical_finding_waits_for_approval_then_pages(url, token)

        failing = tmp_path / "failing.json"
        failing.write_text(json.dumps(_failing_workflow()))
        result = subprocess.run(
            flowyard("run", str(failing), "--wait", "--timeout", "180"),
            env=clean_env(FLOWYARD_URL=url, FLOWYARD_TOKEN=token),
            capture_output=True, text=True, timeout=240, cwd=REPO,
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert _table_rows(result.stdout)["check"] == "failed"


def _critical_finding_waits_for_approval_then_pages(url: str, token: str) -> None:
    result = subprocess.run(
        flowyard("run", str(EXAMPLES / "vulnerability-triage.json"), "--input",
                 '{"title": "Log4Shell", "severity": 9}', "--wait", "--timeout", "15"),
        env=clean_env(FLOWYARD_URL=url, FLOWYARD_TOKEN=token),
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    # --wait gives up at the timeout: the instance is still waiting, so the exit code is 1.
    assert result.returncode == 1, result.stdout + result.stderr
    assert "waiting for approval at approve" in result.stdout, result.stdout
    started_line = re.search(r"started instance (\S+)", result.stdout)
    assert started_line, result.stdout
    instance_id = started_line.group(1)
    headers = {"Authorization": f"Bearer {token}"}
    pending = requests.get(f"{url}/api/approvals", params={"status": "pending"},
                           headers=headers, timeout=10).json()["items"]
    approval = next(a for a in pending if "Log4Shell" in (a.get("approval_message") or ""))
    decided = requests.post(f"{url}/api/approvals/{approval['id']}/approve",
                            json={"comment": "page them"}, headers=headers, timeout=10)
    assert decided.status_code == 200, decided.text

    def finished() -> dict[str, Any] | None:
        details = requests.get(f"{url}/api/workflow-instances/{instance_id}/details",
                               headers=headers, timeout=10).json()
        return details if details["status"] in ("completed", "failed", "cancelled") else None

    details = wait_for(finished, 120, "the approved instance to finish")
    steps = {step["node_id"]: step["status"] for step in details["steps"]}
    assert details["status"] == "completed"
    assert steps["page"] == "completed" and steps["declined"] == "skipped"


def _table_rows(output: str) -> dict[str, str]:
    """node id -> status from the step table `flowyard run --wait` prints."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in re.split(r"[│┃|]", line)][1:-1]
        if len(cells) >= 3 and cells[2] in ("completed", "failed", "skipped", "pending",
                                            "running", "waiting_approval"):
            rows[cells[0]] = cells[2]
    return rows


def _failing_workflow() -> dict[str, Any]:
    return {
        "name": "cli test: failing",
        "workflow_data": {
            "nodes": [
                {"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                 "data": {"label": "Start"}},
                # `input.missing` does not exist: evaluating it fails the step.
                {"id": "check", "type": "condition", "position": {"x": 200, "y": 0},
                 "data": {"label": "Check", "config": {"expression": "input.missing > 1"}}},
                {"id": "after", "type": "noop", "position": {"x": 400, "y": 0},
                 "data": {"label": "After"}},
            ],
            "edges": [
                {"id": "e1", "source": "start", "target": "check"},
                {"id": "e2", "source": "check", "target": "after", "sourceHandle": "true"},
            ],
        },
    }
