"""How a server's open connections split between its processes, read from /proc.

A closed load keeps its few keep-alive connections for the whole run, each on whichever API
process accepted it; a process holding more of them than it has threads queues the rest,
and that, more than anything else, sets the run's p99 (RESULTS.md, the eighteenth and
twenty-first rounds). The runner prints the split it saw in the middle of each closed load.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_ESTABLISHED = "01"  # the `st` column of /proc/net/tcp


def established_inodes(tcp_table: str, port: int) -> set[int]:
    """The socket inodes of the ESTABLISHED connections whose local port is `port`, from
    the text of /proc/net/tcp or /proc/net/tcp6 (a header line, then one line per socket:
    slot, local address:port in hex, remote address:port, state, ..., inode)."""
    inodes: set[int] = set()
    for line in tcp_table.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _ESTABLISHED:
            continue
        local_port = int(fields[1].rpartition(":")[2], 16)
        if local_port == port:
            inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open (empty if it is gone)."""
    found: set[int] = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:["):
            found.add(int(target[len("socket:["):-1]))
    return found


def connections_by_process(port: int, pids: Iterable[int]) -> dict[int, int]:
    """For each of `pids`, how many connections accepted on `port` it holds now."""
    accepted: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            accepted |= established_inodes(Path(table).read_text(), port)
        except OSError:
            continue
    return {pid: len(_socket_inodes(pid) & accepted) for pid in pids}


def split_text(counts: Iterable[int]) -> str:
    """"4 + 4": the processes that hold connections, most first."""
    held = sorted((count for count in counts if count), reverse=True)
    return " + ".join(str(count) for count in held) or "none"
