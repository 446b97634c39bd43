"""bench.resources: which process counts in which group, and the CPU time a group used."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid

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


def test_a_group_counts_the_cpu_time_its_live_processes_used() -> None:
    marker = f"busy-{uuid.uuid4().hex}"
    busy = ("import sys, time\n"
            "end = time.process_time() + 0.5\n"
            "while time.process_time() < end: pass\n"
            "print('done', flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", busy, marker], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    def group_of(cmdline: str) -> str | None:
        return "busy" if marker in cmdline else None

    try:
        deadline = time.monotonic() + 30
        while "busy" not in cpu_seconds_by_group(group_of):
            assert time.monotonic() < deadline, "the child never showed up in /proc"
            time.sleep(0.01)
        assert child.stdout is not None and child.stdout.readline() == "done\n"
        used = cpu_seconds_by_group(group_of)["busy"]
        assert 0.45 <= used < 5.0
    finally:
        child.kill()
        child.wait()


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
    marker = f"busy-{uuid.uuid4().hex}"
    # Burns 0.3 s of CPU for every line it reads, then says so.
    busy = ("import sys, time\n"
            "for _ in sys.stdin:\n"
            "    end = time.process_time() + 0.3\n"
            "    while time.process_time() < end: pass\n"
            "    print('done', flush=True)\n")
    child = subprocess.Popen([sys.executable, "-c", busy, marker], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdin is not None and child.stdout is not None
    window = CpuWindow(lambda cmdline: "busy" if marker in cmdline else None)
    try:
        window.start()
        child.stdin.write("burn\n")
        child.stdin.flush()
        assert child.stdout.readline() == "done\n"
        window.stop()
        window.start()
        time.sleep(0.3)  # the child idles, waiting for a line
        window.stop()
    finally:
        child.kill()
        child.wait()
    busy_window, idle_window = window.spent
    assert 0.25 <= busy_window < 5.0
    assert idle_window < 0.1
