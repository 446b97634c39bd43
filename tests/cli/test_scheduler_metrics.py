"""`flowyard scheduler --metrics-port`: a step nobody claims is re-sent, and counted."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.cli.processes import (
    admin_token,
    clean_env,
    flowyard,
    free_port,
    http_ok,
    scrape,
    started,
    tail,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ONE_NOOP = {"name": "scheduler metrics: one noop", "workflow_data": {
    "nodes": [{"id": "only", "type": "noop", "position": {"x": 0, "y": 0},
               "data": {"label": "only"}}], "edges": []}}


def _reconciler_samples(url: str) -> dict[tuple[str, str], float]:
    """By name and job (empty for the pass histogram, which has no job)."""
    return {(name, dict(labels).get("job", "")): value
            for (name, labels), value in scrape(url, "flowyard_reconciler_").items()}


def test_a_step_no_worker_claims_is_resent_and_counted(
        tmp_path: Path, own_database_url: str, own_redis_url: str) -> None:
    # No worker runs: the step's first send is never taken, and after twice the lease the
    # reconciler sends it again. Databases of its own: the reconciler works on every
    # instance it finds (with no worker, what it admitted of other tests' would stay running
    # into theirs), and the sends nobody takes are dropped with its Redis database.
    database_url, redis_url = own_database_url, own_redis_url
    env = clean_env(DATABASE_URL=database_url, REDIS_URL=redis_url,
                    FLOWYARD_RECONCILE_INTERVAL="0.2", FLOWYARD_STEP_LEASE_SECONDS="1")
    api_port, metrics_port = free_port(), free_port()
    url, metrics_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}"
    scheduler_log = tmp_path / "scheduler.log"
    headers = {"Authorization": f"Bearer {admin_token(database_url)}"}
    with (
        started(flowyard("api", "--host", "127.0.0.1", "--port", str(api_port)), env,
                tmp_path / "api.log") as api,
        started(flowyard("scheduler", "--metrics-port", str(metrics_port),
                         "--metrics-address", "127.0.0.1"), env,
                scheduler_log) as scheduler,
    ):
        wait_for(lambda: http_ok(f"{url}/readyz"), 120, "the API's /readyz", alive=api)
        wait_for(lambda: http_ok(metrics_url), 60, "the scheduler's metrics",
                 alive=scheduler)
        # Every job's series is there before it handled anything.
        first = _reconciler_samples(metrics_url)
        assert first[("flowyard_reconciler_handled_total", "redispatch_unclaimed")] == 0
        assert ("flowyard_reconciler_job_failures_total", "expire_leases") in first

        created = requests.post(f"{url}/api/workflows", json=ONE_NOOP, headers=headers,
                                timeout=10)
        assert created.status_code == 201, created.text
        launched = requests.post(f"{url}/api/workflows/{created.json()['id']}/execute",
                                 json={"input": {}}, headers=headers, timeout=10)
        assert launched.status_code == 202, launched.text

        def resent() -> float:
            return _reconciler_samples(metrics_url)[
                ("flowyard_reconciler_handled_total", "redispatch_unclaimed")]

        wait_for(lambda: resent() >= 1, 60, "the reconciler to re-send the step",
                 alive=scheduler)
        after = _reconciler_samples(metrics_url)
        assert after[("flowyard_reconciler_pass_duration_seconds_count", "")] >= 2
        assert all(value == 0 for (name, _), value in after.items()
                   if name == "flowyard_reconciler_job_failures_total"), tail(scheduler_log)
    assert scheduler.returncode == 0, tail(scheduler_log)
