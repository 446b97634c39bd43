"""Delays are database timers: parallel delays share one worker slot without holding it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status
from tests.processes import scheduler_process, worker_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(e2e_settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    """ONE worker process with concurrency 1, and a scheduler."""
    with worker_process(e2e_settings, concurrency=1) as worker, \
            scheduler_process(e2e_settings) as sched:
        yield {"worker": worker, "scheduler": sched}


def test_three_parallel_delays_overlap_on_one_worker_slot(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("d1", "delay", {"seconds": 3}),
        node("d2", "delay", {"seconds": 3}),
        node("d3", "delay", {"seconds": 3}),
        node("join", "noop"),
    ], [edge("start", "d1"), edge("start", "d2"), edge("start", "d3"),
        edge("d1", "join"), edge("d2", "join"), edge("d3", "join")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id, timeout=30)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    for name in ("d1", "d2", "d3"):
        assert recorded[name].output_data == {"waited_seconds": 3}
        # Each delay really waited its 3 s (database clock)...
        assert recorded[name].duration_ms is not None and recorded[name].duration_ms >= 3000
    # ...yet together they took far less than 9 s: none held the only worker slot.
    assert row.completed_at is not None and row.started_at is not None
    assert (row.completed_at - row.started_at).total_seconds() < 7.0
