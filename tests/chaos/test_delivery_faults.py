"""Delivery faults: a killed worker, a duplicated message, a stalled worker past its lease.

Each test runs its own worker processes so it can kill or stop them. Steps run at least once;
their recorded effect happens once (CONTRACT §4.7).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import uuid
from typing import Any

import pytest

from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status
from tests.processes import scheduler_process, wait_until, worker_process
from worker.dispatch import task_name

pytestmark = pytest.mark.slow


def _slow_flow(runtime: Any, url: str) -> uuid.UUID:
    return make_workflow(runtime, [
        node("start", "trigger"), node("call", "http", {"url": url}), node("end", "noop"),
    ], [edge("start", "call"), edge("call", "end")])


def test_kill_9_mid_step_reruns_it_and_records_once(runtime: Any, e2e_settings: Any,
                                                    http_server: Any) -> None:
    path = f"/slow/{uuid.uuid4().hex}"
    wf = _slow_flow(runtime, f"{http_server.base_url}{path}?seconds=2")
    with worker_process(e2e_settings, concurrency=1) as worker, scheduler_process(e2e_settings):
        instance_id = start(runtime, wf)
        wait_until(lambda: http_server.count(path) == 1, 30, message="the slow call to start")
        (child,) = worker.children()
        os.kill(child, signal.SIGKILL)
        row = wait_status(runtime, instance_id, timeout=60)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    call = recorded["call"]
    assert call.status == "completed" and call.attempt == 2
    assert call.output_data["body"]["call"] == 2
    assert recorded["end"].status == "completed" and recorded["end"].attempt == 1
    keys = [k for p, k in http_server.requests if p == path]
    assert keys == [f"{call.id}:1", f"{call.id}:2"]


def test_kill_9_of_a_threads_worker_loses_no_pure_step(runtime: Any,
                                                      e2e_settings: Any) -> None:
    # A threads worker dies whole: every step its threads held goes with it, unacknowledged
    # (no pool child to lose, so nothing is rejected back to the queue at once).
    chain = [node("start", "trigger"), *[node(f"t{i}", "transform", {"output": {"i": i}})
                                         for i in range(9)]]
    wf = make_workflow(runtime, chain, [edge(a["id"], b["id"])
                                        for a, b in zip(chain, chain[1:], strict=False)])
    pure = {"queues": "trigger,noop,transform,condition", "pool": "threads", "concurrency": 2}
    with scheduler_process(e2e_settings):
        with worker_process(e2e_settings, name="doomed", **pure) as doomed:
            instance_ids = [start(runtime, wf) for _ in range(20)]
            wait_until(lambda: _completed_steps(runtime, instance_ids) >= 40, 60,
                       message="some steps to complete")
            doomed.signal_group(signal.SIGKILL)
        # What the dead worker held is re-sent by the reconciler once its claim is overdue.
        with worker_process(e2e_settings, name="heir", **pure):
            rows = [wait_status(runtime, instance_id, timeout=90) for instance_id in instance_ids]
    assert [row.status for row in rows] == ["completed"] * len(rows)
    for instance_id in instance_ids:
        recorded = steps(runtime, instance_id)
        assert {step.attempt for step in recorded.values()} == {1}
        assert recorded["t8"].output_data == {"i": 8}


def _completed_steps(runtime: Any, instance_ids: list[uuid.UUID]) -> int:
    return sum(step.status == "completed" for instance_id in instance_ids
               for step in steps(runtime, instance_id).values())


def test_same_step_delivered_twice_concurrently_has_one_effect(
        runtime: Any, e2e_settings: Any, http_server: Any) -> None:
    path = f"/slow/{uuid.uuid4().hex}"
    wf = make_workflow(runtime, [node("call", "http",
                                      {"url": f"{http_server.base_url}{path}?seconds=1"})], [])
    silent = dataclasses.replace(runtime, celery=None)  # decide the step, send nothing yet
    with worker_process(e2e_settings, concurrency=2) as worker:
        instance_id = start(silent, wf)
        step_id = wait_until(lambda: steps(runtime, instance_id).get("call"), 10,
                             message="the step row").id
        for _ in range(2):
            runtime.celery.send_task(task_name("http"), args=[str(step_id)], queue="http")
        row = wait_status(runtime, instance_id, timeout=60)
        wait_until(lambda: "stale" in worker.log(), 30, message="the duplicate to be dropped")
    assert row.status == "completed", row.error_details
    call = steps(runtime, instance_id)["call"]
    assert call.attempt == 1
    assert http_server.count(path) == 1


def test_stalled_worker_cannot_overwrite_newer_attempt(runtime: Any, e2e_settings: Any,
                                                       http_server: Any) -> None:
    path = f"/slow/{uuid.uuid4().hex}"
    wf = _slow_flow(runtime, f"{http_server.base_url}{path}?seconds=3")
    with worker_process(e2e_settings, concurrency=1, name="stalled") as stalled, \
            scheduler_process(e2e_settings):
        instance_id = start(runtime, wf)
        wait_until(lambda: http_server.count(path) == 1, 30, message="the first attempt")
        stalled.signal_group(signal.SIGSTOP)
        try:
            with worker_process(e2e_settings, concurrency=1, name="fresh"):
                row = wait_status(runtime, instance_id, timeout=60)
        finally:
            stalled.signal_group(signal.SIGCONT)
        wait_until(lambda: "step.superseded" in stalled.log(), 30,
                   message="the stalled worker to finish its old attempt")
        after = steps(runtime, instance_id)["call"]
    assert row.status == "completed", row.error_details
    assert after.attempt == 2 and after.status == "completed"
    # The newer attempt's result stands: the late worker's answer (call 1) was discarded.
    assert after.output_data["body"]["call"] == 2


def test_step_whose_message_was_lost_is_resent_by_the_reconciler(
        runtime: Any, e2e_settings: Any) -> None:
    wf = make_workflow(runtime, [node("start", "trigger"), node("end", "noop")],
                       [edge("start", "end")])
    # Committed but never sent: as if the process died between commit and dispatch.
    silent = dataclasses.replace(runtime, celery=None)
    with worker_process(e2e_settings, concurrency=1), scheduler_process(e2e_settings):
        instance_id = start(silent, wf)
        row = wait_status(runtime, instance_id, timeout=60)
    assert row.status == "completed", row.error_details
    assert all(step.attempt == 1 for step in steps(runtime, instance_id).values())


def test_long_retry_backoff_is_a_database_timer(runtime: Any, e2e_settings: Any,
                                                 http_server: Any) -> None:
    key = uuid.uuid4().hex
    wf = make_workflow(runtime, [
        node("call", "http", {"url": f"{http_server.base_url}/flaky/{key}?fail=1"},
             retries=1, retry_backoff_seconds=4),
    ], [])
    with worker_process(e2e_settings, concurrency=1), scheduler_process(e2e_settings):
        instance_id = start(runtime, wf)

        def waiting_on_timer() -> Any:
            step = steps(runtime, instance_id).get("call")
            return step if step is not None and step.run_after is not None else None

        pending = wait_until(waiting_on_timer, 30, message="the retry timer")
        # No message is parked in Redis for the retry: the timer lives in PostgreSQL.
        assert pending.status == "pending" and pending.dispatched_at is None
        row = wait_status(runtime, instance_id, timeout=60)
    assert row.status == "completed", row.error_details
    call = steps(runtime, instance_id)["call"]
    assert call.retry_count == 1 and call.attempt == 2
    assert (call.started_at - pending.run_after).total_seconds() >= 0


def test_two_schedulers_fire_each_timer_once(runtime: Any, e2e_settings: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        *[node(f"d{i}", "delay", {"seconds": 1}) for i in range(5)],
        node("join", "noop"),
    ], [*[edge("start", f"d{i}") for i in range(5)], *[edge(f"d{i}", "join") for i in range(5)]])
    with worker_process(e2e_settings, concurrency=1), scheduler_process(e2e_settings), \
            scheduler_process(e2e_settings):
        instance_id = start(runtime, wf)
        row = wait_status(runtime, instance_id, timeout=60)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert all(step.status == "completed" and step.attempt == 1 for step in recorded.values())
    assert (row.execution_metrics or {})["step_count"] == 7
