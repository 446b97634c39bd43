"""The baseline: the least any Celery-plus-database engine pays per hop.

Each hop is one Celery task that writes one row to PostgreSQL and enqueues the next hop, with
the same reliability settings Flowyard uses (acks_late, prefetch 1, JSON). Run a worker with
`python -m bench.baseline BROKER_URL DATABASE_URL [CONCURRENCY [POOL]]`, POOL being
`prefork` (the default) or `threads`: the pool Flowyard's bench workers run, so both sides
pay the same to hand a message to the code that runs it.
"""

from __future__ import annotations

import sys
import threading

import psycopg
from celery import Celery
from celery.signals import worker_process_init

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS bench_baseline_hops (
    run_id TEXT NOT NULL,
    chain INTEGER NOT NULL,
    hop INTEGER NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, chain, hop)
)
"""


def make_baseline_app(broker_url: str, database_url: str) -> Celery:
    app = Celery("bench_baseline", broker=broker_url)
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_default_queue="bench_baseline",
        broker_connection_retry_on_startup=True,
    )
    # One connection per thread that runs hops: a prefork child's one, or a pool thread's.
    state = threading.local()

    def connection() -> psycopg.Connection:
        conn: psycopg.Connection | None = getattr(state, "conn", None)
        if conn is None:
            conn = state.conn = psycopg.connect(database_url, autocommit=True)
        return conn

    @worker_process_init.connect(weak=False)
    def _fresh_connection(**_: object) -> None:
        state.__dict__.clear()  # never share a connection across fork

    @app.task(name="bench.hop")
    def hop(run_id: str, chain: int, number: int, total: int) -> None:
        connection().execute(
            "INSERT INTO bench_baseline_hops (run_id, chain, hop) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (run_id, chain, number),
        )
        if number < total:
            hop.delay(run_id, chain, number + 1, total)

    return app


def main(argv: list[str]) -> None:
    broker_url, database_url = argv[0], argv[1]
    concurrency = argv[2] if len(argv) > 2 else "1"
    pool = argv[3] if len(argv) > 3 else "prefork"
    app = make_baseline_app(broker_url, database_url)
    app.worker_main(["worker", "-Q", "bench_baseline", "-c", concurrency, "--loglevel", "WARNING",
                     "--without-gossip", "--without-mingle", "--pool", pool])


if __name__ == "__main__":
    main(sys.argv[1:])
