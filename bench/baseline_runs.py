"""Measure the baseline (bench.baseline) hop latency and throughput on running workers."""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import psycopg

from bench.baseline import TABLE_DDL, make_baseline_app
from bench.environment import BenchEnvironment
from bench.resources import CpuWindow
from bench.stats import HopSample

POLL_SECONDS = 0.005


def prepare(env: BenchEnvironment) -> None:
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        conn.execute(TABLE_DDL)


def _wait_for_rows(env: BenchEnvironment, run_id: str, expected: int, deadline: float) -> None:
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        while True:
            row = conn.execute("SELECT count(*) FROM bench_baseline_hops WHERE run_id = %s",
                               (run_id,)).fetchone()
            if row is not None and row[0] >= expected:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline run {run_id} saw {row} of {expected} hops")
            time.sleep(POLL_SECONDS)


def _timestamps(env: BenchEnvironment, run_id: str) -> dict[int, list[datetime]]:
    chains: dict[int, list[datetime]] = {}
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT chain, hop, at FROM bench_baseline_hops WHERE run_id = %s ORDER BY chain, hop",
            (run_id,),
        ).fetchall()
    for chain, _hop, at in rows:
        chains.setdefault(chain, []).append(at)
    return chains


def run_chains(env: BenchEnvironment, chains: int, hops: int, timeout: float = 120.0,
               cpu: CpuWindow | None = None) -> HopSample:
    """Start `chains` chains of `hops` hops at once and wait until every hop is recorded;
    `cpu`, if given, is open from the first start until then."""
    app = make_baseline_app(env.redis_url, env.database_url)
    run_id = uuid.uuid4().hex
    if cpu is not None:
        cpu.start()
    started = time.monotonic()
    for chain in range(chains):
        app.send_task("bench.hop", args=[run_id, chain, 1, hops], queue="bench_baseline")
    _wait_for_rows(env, run_id, chains * hops, started + timeout)
    elapsed = time.monotonic() - started
    if cpu is not None:
        cpu.stop()
    return HopSample.from_chains(list(_timestamps(env, run_id).values()), elapsed)
