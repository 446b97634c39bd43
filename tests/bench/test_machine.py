"""The run header's probes of the machine."""

from __future__ import annotations

import math

import psutil

from bench.machine import handoff_probe_us


def test_the_handoff_probe_times_round_trips_and_reaps_its_echo() -> None:
    before = {child.pid for child in psutil.Process().children()}
    round_trip = handoff_probe_us(repeats=2)
    # A round trip is at least two system calls each side, and well under a second.
    assert math.isfinite(round_trip) and 0.5 < round_trip < 1e6
    assert {child.pid for child in psutil.Process().children()} == before
