"""API scenarios: execute (and the CPU each call costs) and details under load from a second
process; a 100,000-row list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg

from bench.cluster import FlowyardClient, chain_document
from bench.connections import connections_by_process, split_text
from bench.environment import BenchEnvironment
from bench.resources import cluster_group, cpu_seconds_by_group, pids_in_group
from bench.scenarios import CPU_PER_STEP, Row, timed
from bench.stats import median

EXECUTE_CPU = "4. POST /execute CPU per call, all processes"


def _load(client: FlowyardClient, method: str, path: str, body: Any, seconds: float,
          connections: int, rate: float | None = None) -> dict[str, Any]:
    """`bench.load` in its own process: a closed loop, or an open one at `rate` a second.

    A closed loop's result also says how its connections split between the API's processes
    (`connection_split`, seen halfway through)."""
    command = [sys.executable, "-m", "bench.load", client.base_url, client.token, method, path,
               json.dumps(body) if body is not None else "-", str(seconds), str(connections),
               *([] if rate is None else [str(rate)])]
    root = str(Path(__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=root)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as load:
        split = None
        if rate is None:
            time.sleep(seconds / 2)
            split = _connection_split(client)
        out, err = load.communicate()
    if load.returncode:
        raise subprocess.CalledProcessError(load.returncode, command, out, err)
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["connection_split"] = split
    return result


def _connection_split(client: FlowyardClient) -> str:
    port = urlsplit(client.base_url).port or 80
    return split_text(connections_by_process(
        port, pids_in_group(cluster_group(port), "api")).values())


def _wait_all_finished(env: BenchEnvironment, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM workflow_instances"
                               " WHERE status IN ('pending', 'running')").fetchone()
            if not row or not row[0]:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{row[0]} instances still unfinished after the load")
            time.sleep(0.05)


def _cpu_per_call(before: dict[str, float], after: dict[str, float], calls: int,
                  load_cpu_seconds: float) -> float:
    """Print each group's CPU per call; return the sum over the system's groups (ms)."""
    per_call = {group: 1000 * (after.get(group, 0.0) - seconds) / calls
                for group, seconds in before.items()}
    parts = ", ".join(f"{group} {ms:.2f}" for group, ms in sorted(per_call.items()))
    total = sum(per_call.values())
    print(f"  POST /execute CPU per call (ms): {parts}; total {total:.2f} "
          f"(the load tool's own: {1000 * load_cpu_seconds / calls:.2f})", flush=True)
    return total


def api_under_load(client: FlowyardClient, env: BenchEnvironment, seconds: float,
                   fixed_rates: Sequence[float], connections: int = 8) -> list[Row]:
    """`POST /execute` as a closed loop of `connections` (the most it answers, and the CPU
    a call costs), then as an open loop at each of `fixed_rates` calls a second (how long
    a call takes at that load); `GET /details` as a closed loop."""
    workflow_id = client.create_workflow("bench api load", chain_document(1))
    group_of = cluster_group(urlsplit(client.base_url).port or 80)
    cpu_before = cpu_seconds_by_group(group_of)
    execute = _load(client, "POST", f"/api/workflows/{workflow_id}/execute", {"input": {}},
                    seconds, connections)
    # Every call's work, the steps it started included: they may finish after the load.
    _wait_all_finished(env)
    cpu_per_call = _cpu_per_call(cpu_before, cpu_seconds_by_group(group_of),
                                 max(1, execute["requests"]), execute["cpu_seconds"])
    # The target read as a rate: at that many calls a second, how long does a call take?
    at_rates: list[Row] = []
    for rate in fixed_rates:
        at_rate = _load(client, "POST", f"/api/workflows/{workflow_id}/execute",
                        {"input": {}}, seconds, connections=32, rate=rate)
        _wait_all_finished(env)
        at_rates += _fixed_rate_rows(f"POST /execute at a fixed {rate:.0f} req/s", at_rate,
                                     "p99 <= 50 ms" if rate >= 300 else "")
    instance_id = client.execute(workflow_id)
    client.wait_finished(instance_id)
    details = _load(client, "GET", f"/api/workflow-instances/{instance_id}/details", None,
                    seconds, connections)
    cores = os.cpu_count() or 1
    # CPU time is what a CPU-bound machine runs out of: this many calls a second is the
    # most its cores allow, whatever the load looks like.
    cpu_row = Row(EXECUTE_CPU, cpu_per_call, "ms",
                  target=f"{cores} cores allow {1000 * cores / cpu_per_call:.0f} req/s")
    return [*_load_rows("POST /execute", execute, ">= 300 req/s, p99 <= 50 ms"), cpu_row,
            *at_rates,
            *_load_rows("GET /details", details, "")]


def with_execute_cpu_in_bare_hops(rows: list[Row]) -> list[Row]:
    """`rows`, with `POST /execute`'s CPU per call counted in the baseline's steps (bare
    Celery hops) right after it, when this run measured both. A host moves both alike, so
    the count compares runs on different hosts; how many 300 calls a second allow says
    what this host allows."""
    measured = {row.scenario: row for row in rows}
    step, call = measured.get(CPU_PER_STEP), measured.get(EXECUTE_CPU)
    if step is None or call is None or not step.baseline:
        return rows
    hop_ms = step.baseline
    allowed = 1000 * (os.cpu_count() or 1) / 300 / hop_ms
    counted = Row("4. POST /execute CPU per call, in bare hops", call.value / hop_ms, "hops",
                  target=f"300 req/s allows {allowed:.2f} here (a bare hop: {hop_ms:.2f} ms)")
    at = rows.index(call) + 1
    return [*rows[:at], counted, *rows[at:]]


def _checked(name: str, result: dict[str, Any]) -> None:
    if result["errors"]:
        raise RuntimeError(f"{name}: {result['errors']} failed requests under load")
    # How the connections split between the API's processes shows in these counts.
    print(f"  {name} answers per connection: {result['answers_per_connection']}", flush=True)
    if result.get("connection_split"):
        print(f"  {name} connections per API process (halfway): {result['connection_split']}",
              flush=True)


def _fixed_rate_rows(name: str, result: dict[str, Any], target: str) -> list[Row]:
    _checked(name, result)
    return [Row(f"4. {name}, p50 (open loop)", result["p50_ms"], "ms"),
            Row(f"4. {name}, p99 (open loop)", result["p99_ms"], "ms", target=target)]


def _load_rows(name: str, result: dict[str, Any], target: str) -> list[Row]:
    _checked(name, result)
    return [Row(f"4. {name} throughput", result["requests_per_second"], "req/s",
                target=target),
            Row(f"4. {name} p99", result["p99_ms"], "ms")]


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
        # What autovacuum would do after such a load (this machine runs with it off): the
        # visibility map set, so the page's count reads the index alone (RESULTS, item 59).
        conn.execute("VACUUM (ANALYZE) workflow_instances")


def large_instance_list(client: FlowyardClient, env: BenchEnvironment,
                        count: int) -> list[Row]:
    workflow_id = client.create_workflow("bench list", chain_document(1))
    started = time.monotonic()
    seed_instances(env, workflow_id, count)
    seeding = time.monotonic() - started
    samples = timed(lambda: client.get("/api/workflow-instances?status=completed&limit=50"), 20)
    return [Row(f"4. first page of {count:,} instances (?status=)", median(samples[2:]) * 1000,
                "ms", target=f"<= 50 ms (seeded in {seeding:.1f} s)")]
