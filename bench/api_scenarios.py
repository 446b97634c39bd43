"""API scenarios: execute and details under load from a second process; a 100,000-row list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.cluster import FlowyardClient, chain_document
from bench.environment import BenchEnvironment
from bench.scenarios import Row, timed
from bench.stats import median


def _load(client: FlowyardClient, method: str, path: str, body: Any, seconds: float,
          connections: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.load", client.base_url, client.token, method, path,
               json.dumps(body) if body is not None else "-", str(seconds), str(connections)]
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root)
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def api_under_load(client: FlowyardClient, seconds: float, connections: int = 8) -> list[Row]:
    workflow_id = client.create_workflow("bench api load", chain_document(1))
    execute = _load(client, "POST", f"/api/workflows/{workflow_id}/execute", {"input": {}},
                    seconds, connections)
    instance_id = client.execute(workflow_id)
    client.wait_finished(instance_id)
    details = _load(client, "GET", f"/api/workflow-instances/{instance_id}/details", None,
                    seconds, connections)
    rows = []
    for name, result, target in (("POST /execute", execute, ">= 300 req/s, p99 <= 50 ms"),
                                 ("GET /details", details, "")):
        if result["errors"]:
            raise RuntimeError(f"{name}: {result['errors']} failed requests under load")
        # How the connections split between the API's processes shows in these counts.
        print(f"  {name} answers per connection: {result['answers_per_connection']}",
              flush=True)
        rows.append(Row(f"4. {name} throughput", result["requests_per_second"], "req/s",
                        target=target))
        rows.append(Row(f"4. {name} p99", result["p99_ms"], "ms"))
    return rows


def seed_instances(env: BenchEnvironment, workflow_id: str, count: int) -> None:
    """Insert `count` finished instances straight into the database (fast, set-based)."""
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO workflow_instances (workflow_id, status, priority, progress,
                                            execution_context, created_at, updated_at)
            SELECT %s, (ARRAY['completed','failed','cancelled','completed'])[1 + g %% 4],
                   'normal', 100, '{}'::jsonb,
                   now() - make_interval(secs => g), now() - make_interval(secs => g)
            FROM generate_series(1, %s) AS g
            """,
            (workflow_id, count),
        )
        conn.execute("ANALYZE workflow_instances")


def large_instance_list(client: FlowyardClient, env: BenchEnvironment,
                        count: int) -> list[Row]:
    workflow_id = client.create_workflow("bench list", chain_document(1))
    started = time.monotonic()
    seed_instances(env, workflow_id, count)
    seeding = time.monotonic() - started
    samples = timed(lambda: client.get("/api/workflow-instances?status=completed&limit=50"), 20)
    return [Row(f"4. first page of {count:,} instances (?status=)", median(samples[2:]) * 1000,
                "ms", target=f"<= 50 ms (seeded in {seeding:.1f} s)")]
