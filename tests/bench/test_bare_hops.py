"""The API scenario's CPU per call, counted in the baseline's bare hops."""

from __future__ import annotations

import os

from bench.api_scenarios import EXECUTE_CPU, with_execute_cpu_in_bare_hops
from bench.scenarios import CPU_PER_STEP, Row


def test_a_call_is_counted_in_the_baseline_hops_of_the_same_run() -> None:
    step, call, after = (Row(CPU_PER_STEP, 4.0, "ms", 2.0), Row(EXECUTE_CPU, 6.0, "ms"),
                         Row("5. worker RSS", 600.0, "MiB"))
    first, second, counted, last = with_execute_cpu_in_bare_hops([step, call, after])
    assert (first, second, last) == (step, call, after)  # counted right after the call
    assert counted.unit == "hops"
    assert counted.value == 3.0
    allowed = 1000 * (os.cpu_count() or 1) / 300 / 2.0
    assert f"300 req/s allows {allowed:.2f} here" in counted.target
    assert "a bare hop: 2.00 ms" in counted.target


def test_nothing_is_counted_unless_both_were_measured() -> None:
    for rows in ([Row(EXECUTE_CPU, 6.0, "ms")], [Row(CPU_PER_STEP, 4.0, "ms", 2.0)],
                 [Row(CPU_PER_STEP, 4.0, "ms"), Row(EXECUTE_CPU, 6.0, "ms")]):
        assert with_execute_cpu_in_bare_hops(rows) == rows
