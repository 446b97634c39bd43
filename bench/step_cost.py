"""The orchestrator's own cost per step, in one process, with Celery taken out.

Runs 10-node noop chains through `execute_step` exactly as a worker would, but the "broker"
is an in-memory list: what is left is Flowyard's share of a hop (database round trips,
planning, Python). Use it to profile the hot path without the noise of five processes:

    python -m bench.step_cost DATABASE_URL [--chains N] [--profile out.prof]

DATABASE_URL must name a database this may create tables in (it migrates it to head).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

import structlog

from models.db import transaction
from models.settings import Settings
from models.workflow import Workflow
from worker.dispatch import TASK_PREFIX

CHAIN_LENGTH = 10


class InMemoryCelery:
    """Stands in for the Celery app: `send_task` queues the message for this process."""

    def __init__(self) -> None:
        self.sent: deque[tuple[str, str, dict[str, Any]]] = deque()

    def send_task(self, name: str, args: list[str], **options: Any) -> None:
        self.sent.append((name.removeprefix(TASK_PREFIX), args[0], options.get("kwargs", {})))


def _chain_workflow(runtime: Any) -> uuid.UUID:
    nodes = [{"id": f"n{i}", "type": "noop", "position": {"x": 0, "y": i}, "data": {}}
             for i in range(CHAIN_LENGTH)]
    edges = [{"id": f"e{i}", "source": f"n{i}", "target": f"n{i + 1}"}
             for i in range(CHAIN_LENGTH - 1)]
    with transaction(runtime.session_factory) as session:
        workflow = Workflow(name=f"step-cost-{uuid.uuid4().hex[:8]}",
                            workflow_data={"nodes": nodes, "edges": edges}, configuration={})
        session.add(workflow)
        session.flush()
        return workflow.id


def run_chains(runtime: Any, celery: InMemoryCelery, workflow_id: uuid.UUID,
               chains: int) -> int:
    """Start and drain `chains` instances one after another; returns steps executed."""
    from worker.admission import admit_and_dispatch
    from worker.launch import create_instance
    from worker.orchestrator import execute_step
    from worker.step_run import expected_node

    executed = 0
    for _ in range(chains):
        with transaction(runtime.session_factory) as session:
            workflow = session.get(Workflow, workflow_id)
            assert workflow is not None
            create_instance(session, workflow, {}, "normal", None, "bench", None)
        admit_and_dispatch(runtime)
        while celery.sent:
            step_type, step_id, hints = celery.sent.popleft()
            # What the worker's task does with a message (worker/celery_app.py).
            execute_step(runtime, uuid.UUID(step_id), None, expected_node(step_type, **hints))
            executed += 1
    return executed


@dataclass(frozen=True)
class StepCost:
    steps: int
    wall_ms: float
    cpu_ms: float


def measure(database_url: str, chains: int, profile_path: str | None = None) -> StepCost:
    """Run `chains` 10-node noop chains in this process; the cost per step (wall and CPU).

    The database must be migrated and must have no other Flowyard processes on it.
    """
    from worker.plugins import load_node_types
    from worker.runtime import build_runtime

    # As the bench's workers run (--loglevel WARNING): no line rendered per step.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    settings = Settings(database_url=database_url, max_concurrent_workflows=1000)
    # As a worker's Celery app builds it (`worker.celery_app.make_celery`).
    runtime = build_runtime(settings, load_node_types(), hold_connections=True)
    celery = InMemoryCelery()
    runtime.celery = celery
    try:
        workflow_id = _chain_workflow(runtime)
        run_chains(runtime, celery, workflow_id, 3)  # warm the pool and the graph cache
        profiler = cProfile.Profile() if profile_path else None
        started, cpu_started = time.perf_counter(), time.process_time()
        if profiler is not None:
            profiler.enable()
        steps = run_chains(runtime, celery, workflow_id, chains)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_path)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        runtime.engine.dispose()
    return StepCost(steps, 1000 * wall / steps, 1000 * cpu / steps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--profile", help="write a cProfile of the measured run here")
    args = parser.parse_args(argv)

    from migrations.runner import upgrade

    upgrade(args.database_url)
    cost = measure(args.database_url, args.chains, args.profile)
    print(f"{cost.steps} steps: {cost.wall_ms:.3f} ms per step, {cost.cpu_ms:.3f} ms of it "
          f"on this process's CPU (includes starting each instance)")


if __name__ == "__main__":
    main()
