"""The benchmark scenarios of the benchmarks issue; each returns rows for the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import psycopg

from bench import baseline_runs
from bench.cluster import FlowyardClient, chain_document, fan_document
from bench.environment import BenchEnvironment
from bench.resources import CpuWindow, baseline_group, cluster_group
from bench.stats import HopSample, median, percentile

CPU_PER_STEP = "2. CPU per step, all processes"


@dataclass(frozen=True)
class Row:
    scenario: str
    value: float
    unit: str
    baseline: float | None = None
    target: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.value / self.baseline


def _completed_stamps(client: FlowyardClient, instance_id: str) -> list[datetime]:
    steps = client.details(instance_id)["steps"]
    return sorted(datetime.fromisoformat(step["completed_at"]) for step in steps
                  if step.get("completed_at"))


def flowyard_chains(client: FlowyardClient, env: BenchEnvironment, workflow_id: str,
                    count: int, timeout: float = 300.0,
                    cpu: CpuWindow | None = None) -> HopSample:
    """Start `count` instances through the API at once and wait for all to end; `cpu`, if
    given, is open from the first start until then.

    Completion is observed in PostgreSQL (one cheap query every 5 ms), exactly as the
    baseline's hops are: polling the API from 16 threads would spend the machine's two cores
    on the observer instead of the workers being measured. Hop gaps come from the steps'
    completion stamps, read through the API once everything ended.
    """
    if cpu is not None:
        cpu.start()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=min(count, 8)) as pool:
        ids = list(pool.map(lambda _: client.execute(workflow_id), range(count)))
    wait_ended(env, ids, started + timeout)
    elapsed = time.monotonic() - started
    if cpu is not None:
        cpu.stop()
    failed = [f["id"] for f in (client.get(f"/api/workflow-instances/{i}") for i in ids)
              if f["status"] != "completed"]
    if failed:
        raise RuntimeError(f"instances did not complete: {failed[:3]}")
    return HopSample.from_chains([_completed_stamps(client, i) for i in ids], elapsed)


def wait_ended(env: BenchEnvironment, ids: list[str], deadline: float) -> None:
    """Poll the instances' status in PostgreSQL until every one is terminal."""
    with psycopg.connect(env.database_url, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT count(*) FROM workflow_instances WHERE id = ANY(%s::uuid[])"
                " AND status IN ('completed', 'failed', 'cancelled')", (ids,)).fetchone()
            if row is not None and row[0] >= len(ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{row} of {len(ids)} instances ended in time")
            time.sleep(baseline_runs.POLL_SECONDS)


def alternating(ours: Callable[[], HopSample], base: Callable[[], HopSample],
                runs: int) -> tuple[list[HopSample], list[HopSample]]:
    """`runs` samples of each side, taken turn about.

    The machine's speed drifts within minutes; measured one side after the other, the drift
    would land in the ratio. Taken in turns, both sides see the same machine.
    """
    samples: tuple[list[HopSample], list[HopSample]] = ([], [])
    for _ in range(runs):
        samples[0].append(ours())
        samples[1].append(base())
    return samples


def hop_latency(client: FlowyardClient, env: BenchEnvironment, runs: int) -> list[Row]:
    workflow_id = client.create_workflow("bench chain 10", chain_document(10))
    ours, base = alternating(lambda: flowyard_chains(client, env, workflow_id, 1),
                             lambda: baseline_runs.run_chains(env, 1, 10), runs)
    return [
        Row("1. hop latency p50", median([s.p50 for s in ours]) * 1000, "ms",
            median([s.p50 for s in base]) * 1000, "<= 2.0x baseline"),
        Row("1. hop latency p90", median([s.p90 for s in ours]) * 1000, "ms",
            median([s.p90 for s in base]) * 1000),
    ]


def throughput(client: FlowyardClient, env: BenchEnvironment, runs: int,
               concurrent: int = 50) -> list[Row]:
    """Steps a second, and the CPU time a step costs all the processes that take part
    (Flowyard's: API, workers, scheduler, PostgreSQL, Redis; the baseline's: its workers,
    PostgreSQL, Redis). A slower host slows both sides alike, so the CPU per step compares
    the work each does for a step whatever the host; the baseline's is one bare hop's."""
    workflow_id = client.create_workflow("bench throughput", chain_document(10))
    ours_cpu = CpuWindow(cluster_group(urlsplit(client.base_url).port or 80))
    base_cpu = CpuWindow(baseline_group)
    ours, base = alternating(
        lambda: flowyard_chains(client, env, workflow_id, concurrent, cpu=ours_cpu),
        lambda: baseline_runs.run_chains(env, concurrent, 10, cpu=base_cpu), runs)
    return [Row(f"2. throughput, {concurrent} x 10-node",
                median([s.steps_per_second for s in ours]), "steps/s",
                median([s.steps_per_second for s in base]), ">= 0.5x baseline"),
            Row(CPU_PER_STEP, _cpu_ms_per_step(ours, ours_cpu), "ms",
                _cpu_ms_per_step(base, base_cpu), "(report)")]


def _cpu_ms_per_step(samples: list[HopSample], cpu: CpuWindow) -> float:
    return median([1000 * spent / sample.steps
                   for sample, spent in zip(samples, cpu.spent, strict=True)])


def rest_end_to_end(client: FlowyardClient, runs: int) -> list[Row]:
    workflow_id = client.create_workflow("bench rest e2e", chain_document(10))
    samples = []
    for _ in range(max(runs, 5)):
        started = time.monotonic()
        instance = client.wait_finished(client.execute(workflow_id), poll=0.002)
        samples.append((time.monotonic() - started) * 1000)
        if instance["status"] != "completed":
            raise RuntimeError(f"instance {instance['id']} ended {instance['status']}")
    return [Row("3. REST execute->completed p50, 10 nodes", median(samples), "ms",
                target="<= 100 ms"),
            Row("3. REST execute->completed p99, 10 nodes", percentile(samples, 0.99), "ms")]


def fan_out_in(client: FlowyardClient, widths: tuple[int, ...]) -> list[Row]:
    rows = []
    for width in widths:
        workflow_id = client.create_workflow(f"bench fan {width}", fan_document(width))
        started = time.monotonic()
        instance = client.wait_finished(client.execute(workflow_id), timeout=900, poll=0.05)
        elapsed = time.monotonic() - started
        if instance["status"] != "completed":
            raise RuntimeError(f"fan-out {width} ended {instance['status']}")
        rows.append(Row(f"5. fan-out/fan-in {width}", elapsed, "s", target="completes, linear"))
    return rows


def timed(callable_: Callable[[], object], repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        callable_()
        samples.append(time.perf_counter() - started)
    return samples
