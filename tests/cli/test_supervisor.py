"""The supervisor stops every child and everything the children started, warmly when it can."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import psutil

from api.supervisor import Supervisor
from tests.cli.processes import descendants, gone, wait_for

# A parent that starts a grandchild, writes "ready", and on SIGTERM writes "warm" and exits.
_WARM = """
import signal, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
def stop(*_):
    open(sys.argv[1], "a").write("warm\\n"); sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open(sys.argv[1], "a").write("ready\\n")
while True: time.sleep(0.1)
"""
# A child that ignores SIGTERM: only the timeout's SIGKILL ends it.
_STUBBORN = """
import signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "a").write("ready\\n")
while True: time.sleep(0.1)
"""


def _ready(path: Path) -> bool:
    return path.exists() and "ready" in path.read_text()


def test_stop_is_warm_and_leaves_no_process_behind(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    marks = [tmp_path / "a.mark", tmp_path / "b.mark"]
    for index, mark in enumerate(marks):
        supervisor.start(f"warm-{index}", [sys.executable, "-c", _WARM, str(mark)],
                         dict(os.environ))
    for mark in marks:
        wait_for(lambda mark=mark: _ready(mark), 30, f"{mark.name} ready")
    processes = [psutil.Process(c.pid) for c in supervisor.children]
    processes += [p for c in supervisor.children for p in descendants(c.pid)]
    assert len(processes) == 4

    supervisor.stop(timeout=30)

    assert gone(processes) == []
    assert all("warm" in mark.read_text() for mark in marks)
    assert [c.process.returncode for c in supervisor.children] == [0, 0]


def test_a_child_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    mark = tmp_path / "s.mark"
    child = supervisor.start("stubborn", [sys.executable, "-c", _STUBBORN, str(mark)],
                             dict(os.environ))
    wait_for(lambda: _ready(mark), 30, "stubborn child ready")
    supervisor.stop(timeout=1)
    assert child.process.returncode == -signal.SIGKILL


def test_first_exited_reports_a_child_that_died(tmp_path: Path) -> None:
    supervisor = Supervisor(log_dir=tmp_path)
    supervisor.start("short", [sys.executable, "-c", "print('bye'); raise SystemExit(3)"],
                     dict(os.environ))
    exited = wait_for(supervisor.first_exited, 30, "the child to exit")
    assert exited.name == "short" and exited.process.returncode == 3
    assert "bye" in (tmp_path / "short.log").read_text()
    supervisor.stop(timeout=5)


_DYING_SUPERVISOR = """
import os, sys, time
from api.supervisor import Supervisor
supervisor = Supervisor()
child = supervisor.start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"],
                         dict(os.environ))
print(child.pid, flush=True)
time.sleep(600)
"""


def test_children_stop_when_the_supervisor_is_killed(tmp_path: Path) -> None:
    import subprocess

    parent = subprocess.Popen([sys.executable, "-c", _DYING_SUPERVISOR], stdout=subprocess.PIPE,
                              env=dict(os.environ), cwd=Path(__file__).resolve().parents[2])
    assert parent.stdout is not None
    child = psutil.Process(int(parent.stdout.readline()))
    try:
        assert child.is_running()
        parent.kill()
        parent.wait(30)
        wait_for(lambda: gone([child]) == [], 30, "the orphaned child to stop")
    finally:
        parent.kill()
        parent.wait(30)
        if gone([child]):
            child.kill()
