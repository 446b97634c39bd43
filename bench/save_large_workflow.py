"""Time saving (POST /api/workflows) a 1,000-node, 5,000-edge workflow through the real app.

Runs the Flask app in-process (test client, real PostgreSQL from bench.environment) and prints
the median of several saves, the time validation alone takes, and the ratio to a baseline
measured in the same run: saving a 3-node workflow. Target: the large save well under 1 s.

    .venv/bin/python bench/save_large_workflow.py [RUNS]
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

POSTGRES_ADMIN_URL = os.environ.get(
    "FLOWYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# Only read (rate-limit counters) by a save with a valid token.
REDIS_URL = os.environ.get("FLOWYARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

NODES = 1000
EDGES = 5000


def large_document(name: str) -> dict[str, Any]:
    """NODES noop nodes; each links forward to the next nodes until EDGES edges exist."""
    nodes = [{"id": f"node-{i}", "type": "noop", "position": {"x": (i % 40) * 180,
                                                              "y": (i // 40) * 120},
              "data": {"label": f"Step {i}", "config": {}}} for i in range(NODES)]
    edges: list[dict[str, Any]] = []
    step = 1
    while len(edges) < EDGES:
        for i in range(NODES - step):
            if len(edges) == EDGES:
                break
            edges.append({"id": f"e-{i}-{i + step}", "source": f"node-{i}",
                          "target": f"node-{i + step}", "type": "smoothstep"})
        step += 1
    return {"name": name, "category": "bench", "workflow_data": {"nodes": nodes, "edges": edges}}


def small_document(name: str) -> dict[str, Any]:
    nodes = [{"id": f"n{i}", "type": "noop", "position": {"x": i, "y": 0}, "data": {}}
             for i in range(3)]
    edges = [{"id": "a", "source": "n0", "target": "n1"},
             {"id": "b", "source": "n1", "target": "n2"}]
    return {"name": name, "workflow_data": {"nodes": nodes, "edges": edges}}


@contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh database at `alembic upgrade head`, dropped afterwards."""
    import psycopg

    from migrations import runner

    name = f"flowyard_bench_save_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
        runner.upgrade(url)
        yield url
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _time_posts(client: Any, headers: dict[str, str], make: Any, runs: int) -> list[float]:
    samples = []
    for run in range(runs + 1):
        document = make(f"bench-{run}")
        started = time.perf_counter()
        response = client.post("/api/workflows", json=document, headers=headers)
        elapsed = time.perf_counter() - started
        if response.status_code != 201:
            raise SystemExit(f"save failed: {response.status_code} {response.get_data()[:500]!r}")
        if run:  # the first save warms caches and the connection pool
            samples.append(elapsed)
    return samples


def _time_validation(runs: int) -> list[float]:
    from api.app import default_node_types
    from engine.validation import validate_workflow

    registry = default_node_types()
    document = large_document("validate")["workflow_data"]
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        problems = validate_workflow(document, registry)
        samples.append(time.perf_counter() - started)
        if problems:
            raise SystemExit(f"the benchmark document is invalid: {problems[:3]}")
    return samples


def main(runs: int = 7) -> None:
    from api.app import create_app
    from api.auth import issue_token
    from models.db import make_engine, make_session_factory, transaction
    from models.settings import Settings

    with scratch_database() as database_url:
        settings = Settings(database_url=database_url, redis_url=REDIS_URL)
        engine = make_engine(settings)
        factory = make_session_factory(engine)
        with transaction(factory) as session:
            _, token = issue_token(session, name="bench", roles=["editor"])
        headers = {"Authorization": f"Bearer {token}"}
        client = create_app(settings, session_factory=factory).test_client()
        baseline = statistics.median(_time_posts(client, headers, small_document, runs))
        large = statistics.median(_time_posts(client, headers, large_document, runs))
        validation = statistics.median(_time_validation(runs))
        engine.dispose()
    print(f"save {NODES} nodes / {EDGES} edges: median {large * 1000:.0f} ms over {runs} runs")
    print(f"  of which validation alone: median {validation * 1000:.0f} ms")
    print(f"baseline save 3 nodes / 2 edges: median {baseline * 1000:.1f} ms")
    print(f"ratio large/baseline: {large / baseline:.1f}x")
    print("target: large save under 1000 ms:", "met" if large < 1.0 else "NOT met")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
