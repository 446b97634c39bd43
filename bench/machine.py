"""How fast this machine is at the moment: one fixed piece of pure Python, timed.

The machine's speed moves by more than half within the hour, and by twice between
sessions (RESULTS.md, "Machine and conditions"). Every run prints this probe in its header,
so that absolute numbers from different runs on one host can be set side by side: a run
whose probe took twice as long had half the machine. Across hosts it says little: on the
fourteenth round's host the probe was slower and the baseline chain faster.
"""

from __future__ import annotations

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
