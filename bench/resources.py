"""What the benchmark's processes use, read from /proc: worker memory, CPU time by group."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _rss_kib(status: Path) -> int:
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_rss_mib(marker: str = "bench") -> float:
    """Sum of VmRSS over `flowyard worker` processes (and their prefork children)."""
    total = 0
    for proc, cmdline in _processes():
        if _is_worker(cmdline, marker):
            try:
                total += _rss_kib(proc / "status")
            except OSError:
                continue
    return total / 1024


def _is_worker(cmdline: str, marker: str) -> bool:
    """A `flowyard worker -n <marker>...` process, or one of its prefork children."""
    return " worker " in cmdline and f"-n {marker}" in cmdline


def _processes() -> Iterator[tuple[Path, str]]:
    """Each live process's /proc directory and command line (space-separated)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            yield proc, (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace")
        except OSError:
            continue


def _cpu_seconds(proc: Path) -> float:
    """User plus system time of one process so far."""
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = (proc / "stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def cpu_seconds_by_group(group_of: Callable[[str], str | None]) -> dict[str, float]:
    """CPU seconds used so far by the live processes of each group; `group_of` names a
    process's group from its command line (None: not counted). A process that exits takes
    its time with it: count over a window in which the groups' processes stay up."""
    totals: dict[str, float] = {}
    for proc, cmdline in _processes():
        group = group_of(cmdline)
        if group is None:
            continue
        try:
            totals[group] = totals.get(group, 0.0) + _cpu_seconds(proc)
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile
    return totals


def pids_in_group(group_of: Callable[[str], str | None], group: str) -> list[int]:
    """The live processes `group_of` puts in `group`."""
    return [int(proc.name) for proc, cmdline in _processes() if group_of(cmdline) == group]


@dataclass
class CpuWindow:
    """The CPU seconds the processes of `group_of`'s groups spend between each `start()` and
    `stop()`, all groups together; one entry in `spent` per window."""

    group_of: Callable[[str], str | None]
    spent: list[float] = field(default_factory=list)
    _before: float = field(default=0.0, init=False, repr=False)

    def _now(self) -> float:
        return sum(cpu_seconds_by_group(self.group_of).values())

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        self.spent.append(self._now() - self._before)


def _program(cmdline: str) -> str:
    """A process's program name, as PostgreSQL's and Redis's processes name themselves too."""
    return os.path.basename(cmdline.split(" ", 1)[0]).rstrip(":")


def postgresql_group(cmdline: str) -> str | None:
    """"postgresql" for every process of the PostgreSQL server (the server itself, and its
    processes as they name themselves); None for any other."""
    return "postgresql" if _program(cmdline) == "postgres" else None


def _server_group(cmdline: str) -> str | None:
    """"postgresql" or "redis" for the processes of the machine's servers (the bench has
    them to itself); None for any other."""
    if postgresql_group(cmdline) is not None:
        return "postgresql"
    return "redis" if _program(cmdline) == "redis-server" else None


def baseline_group(cmdline: str) -> str | None:
    """Groups for the baseline's workers (`python -m bench.baseline`, and their prefork
    children) and the servers they use."""
    server = _server_group(cmdline)
    if server is not None:
        return server
    return "baseline" if " -m bench.baseline " in cmdline else None


def cluster_group(api_port: int, marker: str = "bench") -> Callable[[str], str | None]:
    """Groups for a bench cluster (`bench.cluster.flowyard_cluster`) and the servers it uses:
    the API on `api_port`, the workers named `marker`, the scheduler, PostgreSQL and Redis
    (every process of the machine's servers: the bench has them to itself)."""
    def group_of(cmdline: str) -> str | None:
        server = _server_group(cmdline)
        if server is not None:
            return server
        if "flowyard" not in cmdline and "api.cli" not in cmdline:
            return None
        if f"--port {api_port}" in cmdline and " api " in cmdline:
            return "api"
        if _is_worker(cmdline, marker):
            return "workers"
        if cmdline.rstrip().endswith(" scheduler"):
            return "scheduler"
        return None
    return group_of
