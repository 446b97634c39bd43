"""Admission: MAX_CONCURRENT_WORKFLOWS is never exceeded; high priority overtakes low."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from sqlalchemy import text

from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, wait_status

pytestmark = pytest.mark.slow

LIMIT = 3


@pytest.fixture(scope="module")
def e2e_settings(settings: Any) -> Any:
    return settings.replace(max_concurrent_workflows=LIMIT, http_allowed_hosts=("127.0.0.1",))


def _max_overlap(rows: list[Any]) -> int:
    """Most instances whose [started_at, completed_at] intervals overlap at one moment."""
    events = sorted([(r.started_at, 1) for r in rows] + [(r.completed_at, -1) for r in rows],
                    key=lambda e: (e[0], e[1]))
    current = peak = 0
    for _, change in events:
        current += change
        peak = max(peak, current)
    return peak


@pytest.mark.parametrize("fast_path", [False, True], ids=["full-pass", "execute-fast-path"])
def test_limit_holds_with_20_at_once_and_high_overtakes_low(runtime: Any, cluster: Any,
                                                           fast_path: bool) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"), node("wait", "delay", {"seconds": 0.6}), node("end", "noop"),
    ], [edge("start", "wait"), edge("wait", "end")])
    samples: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        with runtime.engine.connect() as conn:
            while not stop.is_set():
                samples.append(conn.execute(text(
                    "SELECT count(*) FROM workflow_instances WHERE status = 'running'"
                )).scalar_one())
                conn.commit()
                stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    starters = []
    low_ids: list[uuid.UUID] = []
    lock = threading.Lock()

    def launch() -> None:
        instance_id = start(runtime, wf, priority="low", fast_path=fast_path)
        with lock:
            low_ids.append(instance_id)

    for _ in range(20):
        starters.append(threading.Thread(target=launch))
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    high_id = start(runtime, wf, priority="high", fast_path=fast_path)
    rows = [wait_status(runtime, i, timeout=120) for i in low_ids + [high_id]]
    stop.set()
    sampler.join()
    assert all(r.status == "completed" for r in rows)
    assert samples and max(samples) <= LIMIT
    assert _max_overlap(rows) <= LIMIT
    high = instance_row(runtime, high_id)
    # Created last, the high-priority instance starts before low ones created before it.
    started_after_high = [r for r in rows[:-1] if r.started_at > high.started_at]
    assert len(started_after_high) >= 20 - 2 * LIMIT
