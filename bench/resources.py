"""Resident memory of the benchmark's Flowyard worker processes, read from /proc."""

from __future__ import annotations

from pathlib import Path


def _rss_kib(status: Path) -> int:
    for line in status.read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def worker_rss_mib(marker: str = "bench") -> float:
    """Sum of VmRSS over `flowyard worker` processes (and their prefork children)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "worker" in cmdline and f"-n {marker}" in cmdline:
                total += _rss_kib(proc / "status")
        except OSError:
            continue
    return total / 1024
