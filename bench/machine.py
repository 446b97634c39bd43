"""How fast this machine is at the moment: one fixed piece of pure Python, timed, and one
hand-off between two processes.

The machine's speed moves by more than half within the hour, and by twice between
sessions (RESULTS.md, "Machine and conditions"). Every run prints these probes in its
header, so that absolute numbers from different runs on one host can be set side by side: a
run whose probe took twice as long had half the machine. Across hosts the speed probe says
little: on the fourteenth round's host it was slower and the baseline chain faster, and on
the twentieth's it was as fast as on the nineteenth's while a bare hop cost 1.8x the CPU.
The hand-off probe times what every hop is made of (a process waking another and waiting
for its answer), which on a nested host costs several times what it costs on a bare one.
"""

from __future__ import annotations

import os
import time

from bench.scenarios import timed

_PROBE_LOOP = 200_000


def _probe_work() -> int:
    # Integer arithmetic, calls and a dict: the interpreter's everyday work, no I/O.
    seen: dict[int, int] = {}
    total = 0
    for i in range(_PROBE_LOOP):
        total += abs(i * 7 - 3) % 11
        seen[i & 1023] = total
    return total + len(seen)


def speed_probe_ms(repeats: int = 7) -> float:
    """The fastest of `repeats` timings of the fixed loop, in ms of wall time: the fastest,
    because anything else running only ever makes a timing longer."""
    return 1000 * min(timed(_probe_work, repeats))


_HANDOFFS = 2_000


def handoff_probe_us(repeats: int = 5) -> float:
    """A round trip between two processes, in µs of wall time: one writes a byte to a pipe,
    the other, blocked on it, wakes and writes one back. The best of `repeats` runs of
    `_HANDOFFS` round trips, the kernel choosing where each process runs."""
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    rounds = repeats * _HANDOFFS
    pid = os.fork()
    if pid == 0:  # the echo: as little Python as a round trip allows
        try:
            for _ in range(rounds):
                os.write(from_child, os.read(to_child, 1))
        finally:
            os._exit(0)
    try:
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            for _ in range(_HANDOFFS):
                os.write(from_parent, b"x")
                os.read(to_parent, 1)
            best = min(best, time.perf_counter() - started)
    finally:
        for fd in (to_child, from_parent, to_parent, from_child):
            os.close(fd)
        os.waitpid(pid, 0)
    return 1e6 * best / _HANDOFFS
