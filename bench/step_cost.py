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
import time
import uuid
from collections import deque
from typing import Any

from models.db import transaction
from models.settings import Settings
from models.workflow import Workflow

CHAIN_LENGTH = 10


class InMemoryCelery:
    """Stands in for the Celery app: `send_task` queues the step id for this process."""

    def __init__(self) -> None:
        self.sent: deque[str] = deque()

    def send_task(self, name: str, args: list[str], **options: Any) -> None:
        self.sent.append(args[0])


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

    executed = 0
    for _ in range(chains):
        with transaction(runtime.session_factory) as session:
            workflow = session.get(Workflow, workflow_id)
            assert workflow is not None
            create_instance(session, workflow, {}, "normal", None, "bench", None)
        admit_and_dispatch(runtime)
        while celery.sent:
            execute_step(runtime, uuid.UUID(celery.sent.popleft()), None)
            executed += 1
    return executed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--chains", type=int, default=100)
    parser.add_argument("--profile", help="write a cProfile of the measured run here")
    args = parser.parse_args(argv)

    from migrations.runner import upgrade
    from worker.plugins import load_node_types
    from worker.runtime import build_runtime

    upgrade(args.database_url)
    settings = Settings(database_url=args.database_url, max_concurrent_workflows=1000)
    runtime = build_runtime(settings, load_node_types())
    celery = InMemoryCelery()
    runtime.celery = celery
    workflow_id = _chain_workflow(runtime)
    run_chains(runtime, celery, workflow_id, 5)  # warm the pool and the graph cache
    profiler = cProfile.Profile() if args.profile else None
    started = time.perf_counter()
    cpu_started = time.process_time()
    if profiler is not None:
        profiler.enable()
    steps = run_chains(runtime, celery, workflow_id, args.chains)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    print(f"{steps} steps in {elapsed:.2f} s: {1000 * elapsed / steps:.3f} ms per step, "
          f"{1000 * cpu / steps:.3f} ms of it on this process's CPU "
          f"(includes starting each instance)")
    runtime.engine.dispose()


if __name__ == "__main__":
    main()
