"""End-to-end hop latency of a 10-node noop chain through real workers, against a baseline.

Run by hand: `.venv/bin/python -m bench.e2e_latency [RUNS]`. It creates a scratch database and
Redis index, starts one `flowyard worker -c 2`, one `flowyard scheduler` and the baseline
worker (bench.baseline: one task + one row per hop, the least a Celery+PostgreSQL engine
pays), runs RUNS chains one after another through the launch/admission path, and prints
per-hop p50/p90 (gap between consecutive step completions, database clock), the instance
wall time, and the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import sys
import time
import uuid
from datetime import datetime
from typing import Any

from bench import baseline_runs
from bench.cluster import flowyard_command
from bench.environment import BenchEnvironment, bench_environment, processes, python_command
from bench.stats import HopSample, percentile

CHAIN_LENGTH = 10


def chain_workflow() -> dict[str, Any]:
    nodes = [{"id": "n0", "type": "trigger", "position": {"x": 0, "y": 0},
              "data": {"label": "n0"}}]
    nodes += [{"id": f"n{i}", "type": "noop", "position": {"x": 100 * i, "y": 0},
               "data": {"label": f"n{i}"}} for i in range(1, CHAIN_LENGTH)]
    edges = [{"id": f"e{i}", "source": f"n{i - 1}", "target": f"n{i}"}
             for i in range(1, CHAIN_LENGTH)]
    return {"nodes": nodes, "edges": edges}


def _runtime(env: BenchEnvironment) -> Any:
    from models.settings import Settings
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    settings = Settings(database_url=env.database_url, redis_url=env.redis_url)
    runtime = build_runtime(settings)
    make_celery(settings, runtime)
    return runtime


def _run_chain(runtime: Any, workflow_id: uuid.UUID, timeout: float = 60.0
               ) -> tuple[list[datetime], float]:
    from models.db import transaction
    from models.instance import WorkflowExecution, WorkflowInstance
    from models.workflow import Workflow
    from worker.admission import admit_and_dispatch
    from worker.launch import create_instance

    with transaction(runtime.session_factory) as session:
        workflow = session.get(Workflow, workflow_id)
        instance, _ = create_instance(session, workflow, {}, "normal", None, "bench", None)
        instance_id = instance.id
    admit_and_dispatch(runtime)
    deadline = time.monotonic() + timeout
    while True:
        with runtime.session_factory() as session:
            row = session.get(WorkflowInstance, instance_id)
            if row is not None and row.status in ("completed", "failed", "cancelled"):
                if row.status != "completed":
                    raise RuntimeError(f"chain ended {row.status}: {row.error_details}")
                stamps = sorted(
                    s.completed_at for s in session.query(WorkflowExecution)
                    .filter(WorkflowExecution.instance_id == instance_id)
                    if s.completed_at is not None)
                wall = (row.completed_at - row.started_at).total_seconds()
                return stamps, wall
        if time.monotonic() > deadline:
            raise TimeoutError(f"chain {instance_id} did not finish in {timeout}s")
        time.sleep(0.005)  # polling the database for completion, not a test wait


def main(runs: int = 20) -> None:
    with bench_environment() as env:
        baseline_runs.prepare(env)
        commands = [
            flowyard_command("worker", "-c", "2", "--loglevel", "WARNING"),
            flowyard_command("scheduler"),
            python_command("-m", "bench.baseline", env.redis_url, env.database_url, "2"),
        ]
        with processes(commands, env.child_env()):
            runtime = _runtime(env)
            from models.db import transaction
            from models.workflow import Workflow

            with transaction(runtime.session_factory) as session:
                workflow = Workflow(name="bench-chain", workflow_data=chain_workflow(),
                                    configuration={})
                session.add(workflow)
                session.flush()
                workflow_id = workflow.id
            _run_chain(runtime, workflow_id, timeout=120)  # warm-up: workers connect
            chains, walls = [], []
            for _ in range(runs):
                stamps, wall = _run_chain(runtime, workflow_id)
                chains.append(stamps)
                walls.append(wall)
            ours = HopSample.from_chains(chains, sum(walls))
            base = baseline_runs.run_chains(env, 1, CHAIN_LENGTH)
            for _ in range(runs - 1):
                more = baseline_runs.run_chains(env, 1, CHAIN_LENGTH)
                base = HopSample(base.hop_seconds + more.hop_seconds, base.steps + more.steps,
                                 base.elapsed_seconds + more.elapsed_seconds)
    print(f"e2e latency: {runs} runs of a {CHAIN_LENGTH}-node noop chain")
    print(f"  hop p50   {ours.p50 * 1000:8.1f} ms   baseline {base.p50 * 1000:6.1f} ms   "
          f"ratio {ours.p50 / base.p50 if base.p50 else float('nan'):5.1f}x")
    print(f"  hop p90   {ours.p90 * 1000:8.1f} ms   baseline {base.p90 * 1000:6.1f} ms   "
          f"ratio {ours.p90 / base.p90 if base.p90 else float('nan'):5.1f}x")
    print(f"  instance wall time p50 {percentile(walls, 0.5) * 1000:8.1f} ms, "
          f"p90 {percentile(walls, 0.9) * 1000:8.1f} ms")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
