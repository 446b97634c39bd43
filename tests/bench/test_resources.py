"""bench.resources: which process counts in which group, and the CPU time a group used."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench.resources import CpuWindow, baseline_group, cluster_group, cpu_seconds_by_group


def test_a_cluster_names_its_own_processes_and_the_servers_it_uses() -> None:
    group_of = cluster_group(api_port=8123)
    flowyard = "/venv/bin/python3 /venv/bin/flowyard"
    assert group_of(f"{flowyard} api --host 127.0.0.1 --port 8123 --workers 2 ") == "api"
    assert group_of(f"{flowyard} api --host 127.0.0.1 --port 8124 --workers 2 ") is None
    assert group_of(f"{flowyard} worker -c 2 --loglevel WARNING -n bench0@%h ") == "workers"
    assert group_of(f"{flowyard} worker -c 2 -n other@%h ") is None
    assert group_of(f"{flowyard} scheduler ") == "scheduler"
    assert group_of("postgres: 15/main: postgres flowyard_bench_1 127.0.0.1(5) idle") \
        == "postgresql"
    assert group_of("/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql ") \
        == "postgresql"
    assert group_of("redis-server 127.0.0.1:6379") == "redis"
    assert group_of("/usr/bin/python3 -m bench.baseline redis://x postgresql://y 2 ") is None


@contextmanager
def _busy_child(seconds: float) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child process that burns `seconds` of CPU for each line it reads, then prints
    "done"; and a marker found only in its command line."""
    marker = f"busy-{uuid.uuid4().hex}"
    busy = ("import sys, time\n"
            "for _ in sys.stdin:\n"
            f"    end = time.process_time() + {seconds}\n"
            "    while time.process_time() < end: pass\n"
            "    print('done', flush=True)\n")
    child = subprocess.Popen([sys.executable, "-c", busy, marker], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        yield child, marker
    finally:
        child.kill()
        child.wait()


def _burn_once(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("burn\n")
    child.stdin.flush()
    assert child.stdout.readline() == "done\n"


def test_a_group_counts_the_cpu_time_its_live_processes_used() -> None:
    with _busy_child(0.5) as (child, marker):
        def group_of(cmdline: str) -> str | None:
            return "busy" if marker in cmdline else None

        _burn_once(child)
        used = cpu_seconds_by_group(group_of)["busy"]
        assert 0.45 <= used < 5.0


def test_the_baseline_names_its_workers_and_the_servers_it_uses() -> None:
    assert baseline_group("/usr/bin/python3 -m bench.baseline redis://x postgresql://y 2 ") \
        == "baseline"
    assert baseline_group("postgres: 15/main: postgres flowyard_bench_1 127.0.0.1(5) idle") \
        == "postgresql"
    assert baseline_group("redis-server 127.0.0.1:6379") == "redis"
    flowyard = "/venv/bin/python3 /venv/bin/flowyard"
    assert baseline_group(f"{flowyard} worker -c 2 --loglevel WARNING -n bench0@%h ") is None
    assert baseline_group(f"{flowyard} api --host 127.0.0.1 --port 8123 --workers 2 ") is None


def test_a_cpu_window_counts_only_what_its_groups_spend_while_open() -> None:
    with _busy_child(0.3) as (child, marker):
        window = CpuWindow(lambda cmdline: "busy" if marker in cmdline else None)
        window.start()
        _burn_once(child)
        window.stop()
        window.start()
        time.sleep(0.3)  # the child idles, waiting for a line
        window.stop()
    busy_window, idle_window = window.spent
    assert 0.25 <= busy_window < 5.0
    assert idle_window < 0.1
