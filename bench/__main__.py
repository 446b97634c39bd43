"""Run the benchmarks: `python -m bench [--smoke] [--only NAME ...]`.

Starts its own PostgreSQL database, Redis index, Flowyard processes (API, 2 workers of
concurrency 2, scheduler) and baseline workers (2 x concurrency 2), both sides' workers on
the same Celery pool (`--pool`: threads, as the manifests run pure steps, or prefork), then
prints each scenario's
median and, where a baseline exists, the ratio Flowyard / baseline measured in this same run.
`--smoke` runs every scenario with few iterations (CI uses it so the bench never rots; it
asserts nothing about speed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import signal
import subprocess
import sys
from collections.abc import Callable

from bench import api_scenarios, baseline_runs, scenarios
from bench.cluster import flowyard_cluster
from bench.environment import bench_environment, processes, python_command
from bench.machine import handoff_probe_us, speed_probe_ms
from bench.resources import worker_rss_mib
from bench.scenarios import Row

SCENARIOS = ("steps", "apicost", "latency", "throughput", "rest", "api", "list", "fan", "save")


def _report(rows: list[Row]) -> None:
    print(f"\n{'scenario':48} {'flowyard':>10} {'unit':8} {'baseline':>10} {'ratio':>7}  target")
    for row in rows:
        baseline = f"{row.baseline:.2f}" if row.baseline is not None else "-"
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        print(f"{row.scenario:48} {row.value:>10.2f} {row.unit:8} {baseline:>10} {ratio:>7}"
              f"  {row.target}")


def _step_cost_rows(database_url: str, chains: int) -> list[Row]:
    from bench.step_cost import measure

    print("running steps ...", flush=True)
    cost = measure(database_url, chains)
    return [Row("0. orchestrator cost per step, in-process (wall)", cost.wall_ms, "ms"),
            Row("0. orchestrator cost per step, in-process (CPU)", cost.cpu_ms, "ms")]


def _execute_cost_rows(calls: int, runs: int) -> list[Row]:
    from bench.execute_cost import measure

    print("running apicost ...", flush=True)
    # A database and Redis index of its own: the thousands of rows it writes and removes
    # would leave dead row versions in the instance indexes the later scenarios read
    # (PostgreSQL's CPU per call under load went from ~2.0 to 2.3 ms with them).
    with bench_environment() as own:
        cost = measure(own.database_url, own.redis_url, calls, runs)
    return [Row("4. POST /execute CPU per call, API in-process", cost.cpu_ms, "ms"),
            Row("4. same, PostgreSQL's CPU per call", cost.database_cpu_ms, "ms")]


def _header(pool: str) -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "unknown"
    print(f"flowyard bench  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M}Z  commit {commit}  "
          f"{platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    # Lower is faster; compare absolute numbers across runs only with this beside them.
    print(f"machine speed probe: {speed_probe_ms():.1f} ms (a fixed pure-Python loop, best of 7)")
    print(f"process hand-off probe: {handoff_probe_us():.1f} µs (a pipe round trip between two "
          "processes, best of 5)")
    print(f"workers: 2 x concurrency 2 a side, Celery pool {pool}", flush=True)


def _exit_on_sigterm() -> None:
    """Make SIGTERM unwind the run, so it still stops its processes and drops its database.

    By default SIGTERM ends Python at once, skipping the cleanup of the `with` blocks: the
    workers of a terminated run lived on and took the next run's tasks from the same Redis
    index.
    """
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))


def main(argv: list[str]) -> int:
    _exit_on_sigterm()
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="few iterations, for CI")
    parser.add_argument("--only", nargs="*", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--rates", nargs="+", type=float, metavar="RATE",
                        help="the rates (calls a second) of the API scenario's open-loop "
                             "POST /execute loads (default: 300, the target; 50 with --smoke)")
    parser.add_argument("--pool", choices=("threads", "prefork"), default="threads",
                        help="the Celery pool of both sides' workers (default: threads, as "
                             "deploy/ runs the queues of pure node types, every bench "
                             "workflow's)")
    args = parser.parse_args(argv)
    runs = 2 if args.smoke else 7
    _header(args.pool)
    rows: list[Row] = []
    failures: list[str] = []
    with bench_environment() as env:
        if "steps" in args.only:
            # In this process, before any Flowyard process shares the database.
            rows.extend(_step_cost_rows(env.database_url, 5 if args.smoke else 100))
        if "apicost" in args.only:
            # In this process too, before the cluster: its workers would take the messages.
            rows.extend(_execute_cost_rows(100 if args.smoke else 1000, 1 if args.smoke else 5))
        baseline_runs.prepare(env)
        baseline_workers = [python_command("-m", "bench.baseline", env.redis_url,
                                           env.database_url, "2", args.pool) for _ in range(2)]
        with processes(baseline_workers, env.child_env()), \
                flowyard_cluster(env, pool=args.pool) as client:
            baseline_runs.run_chains(env, 2, 3, timeout=60)  # baseline warm-up
            steps: dict[str, Callable[[], list[Row]]] = {
                "latency": lambda: scenarios.hop_latency(client, env, runs),
                "throughput": lambda: scenarios.throughput(client, env, runs,
                                                           10 if args.smoke else 50),
                "rest": lambda: scenarios.rest_end_to_end(client, runs * 3),
                "api": lambda: api_scenarios.api_under_load(client, env, 3 if args.smoke else 15,
                                                            args.rates or ([50] if args.smoke
                                                                           else [300])),
                "list": lambda: api_scenarios.large_instance_list(
                    client, env, 5_000 if args.smoke else 100_000),
                "fan": lambda: scenarios.fan_out_in(client, (20, 100) if args.smoke
                                                    else (200, 1000)),
            }
            for name in args.only:
                if name in steps:
                    print(f"running {name} ...", flush=True)
                    try:
                        produced = steps[name]()
                    except Exception as error:  # report it, keep the other scenarios' rows
                        failures.append(f"{name}: {error}")
                        print(f"  FAILED: {error}", flush=True)
                        continue
                    for row in produced:
                        print(f"  {row.scenario}: {row.value:.2f} {row.unit}", flush=True)
                    rows.extend(produced)
            rows = api_scenarios.with_execute_cpu_in_bare_hops(rows)
            rows.append(Row("5. worker RSS (all worker processes)", worker_rss_mib(), "MiB"))
    _report(rows)
    if "save" in args.only:
        from bench import save_large_workflow

        print()
        save_large_workflow.main(2 if args.smoke else 7)
    for failure in failures:
        print(f"FAILED {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
