"""Retries, failures, pause/resume/cancel, instance retry and idempotency on real workers."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from models.db import transaction
from models.instance import WorkflowInstance
from tests.e2e.helpers import (
    edge,
    instance_row,
    make_workflow,
    node,
    start,
    steps,
    wait_status,
)
from tests.processes import wait_until
from worker import control
from worker.launch import InactiveWorkflowError

pytestmark = pytest.mark.slow


def _control(runtime: Any, action: str, instance_id: uuid.UUID) -> None:
    with transaction(runtime.session_factory) as session:
        result = getattr(control, action)(session, instance_id)
    control.after_control(runtime, result)


def test_retries_count_until_success(runtime: Any, cluster: Any, http_server: Any) -> None:
    key = uuid.uuid4().hex
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("call", "http", {"url": f"{http_server.base_url}/flaky/{key}?fail=2"},
             retries=3, retry_backoff_seconds=0.2),
    ], [edge("start", "call")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    call = steps(runtime, instance_id)["call"]
    assert call.retry_count == 2
    assert call.attempt == 3
    assert call.output_data["status"] == 200
    assert http_server.count(f"/flaky/{key}") == 3
    # Every attempt carried its own idempotency key <step id>:<attempt>.
    keys = [k for path, k in http_server.requests if path == f"/flaky/{key}"]
    assert keys == [f"{call.id}:1", f"{call.id}:2", f"{call.id}:3"]


def test_exhausted_retries_fail_instance_naming_node(runtime: Any, cluster: Any,
                                                     http_server: Any) -> None:
    key = uuid.uuid4().hex
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("call", "http", {"url": f"{http_server.base_url}/flaky/{key}?fail=99"},
             retries=1, retry_backoff_seconds=0.1),
        node("after", "noop"),
    ], [edge("start", "call"), edge("call", "after")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "failed"
    assert "call" in (row.error_details or "") and "500" in (row.error_details or "")
    recorded = steps(runtime, instance_id)
    assert recorded["call"].status == "failed" and recorded["call"].retry_count == 1
    # Nothing new started after the failure.
    assert "after" not in recorded or recorded["after"].status == "skipped"


def test_error_handle_and_on_error_continue(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("bad", "transform", {"output": "{{ input.missing }}"}),
        node("rescue", "transform", {"output": {"rescued": True}}),
        node("lenient", "transform", {"output": "{{ input.missing }}"}, on_error="continue"),
        node("next", "noop"),
    ], [edge("start", "bad"), edge("bad", "rescue", "error"), edge("start", "lenient"),
        edge("lenient", "next")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    recorded = steps(runtime, instance_id)
    assert recorded["bad"].status == "failed"
    assert recorded["rescue"].status == "completed"
    assert recorded["lenient"].status == "completed"
    assert "error" in recorded["lenient"].output_data
    assert recorded["next"].status == "completed"


def _delay_flow(runtime: Any, seconds: float) -> uuid.UUID:
    return make_workflow(runtime, [
        node("start", "trigger"), node("wait", "delay", {"seconds": seconds}),
        node("end", "noop"),
    ], [edge("start", "wait"), edge("wait", "end")])


def test_pause_holds_and_resume_completes(runtime: Any, cluster: Any) -> None:
    instance_id = start(runtime, _delay_flow(runtime, 1.5))

    def delay_running() -> bool:
        step = steps(runtime, instance_id).get("wait")
        return step is not None and step.status == "running"

    wait_until(delay_running, 20, message="delay step running")
    _control(runtime, "pause", instance_id)
    assert instance_row(runtime, instance_id).status == "paused"
    # The running delay finishes and is recorded; the next step is decided but never starts.
    wait_until(lambda: steps(runtime, instance_id)["wait"].status == "completed", 20,
               message="delay to finish while paused")
    wait_until(lambda: "end" in steps(runtime, instance_id), 10, message="end decided")
    assert steps(runtime, instance_id)["end"].status == "pending"
    assert instance_row(runtime, instance_id).status == "paused"
    with pytest.raises(control.TransitionError):
        _control(runtime, "pause", instance_id)
    _control(runtime, "resume", instance_id)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    assert steps(runtime, instance_id)["end"].status == "completed"


def test_cancel_stops_and_then_conflicts(runtime: Any, cluster: Any) -> None:
    instance_id = start(runtime, _delay_flow(runtime, 30))
    wait_until(lambda: steps(runtime, instance_id).get("wait"), 20, message="delay step")
    _control(runtime, "cancel", instance_id)
    row = instance_row(runtime, instance_id)
    assert row.status == "cancelled"
    recorded = steps(runtime, instance_id)
    assert "end" not in recorded and recorded["wait"].status != "running"
    for action in ("pause", "resume", "cancel", "retry"):
        with pytest.raises(control.TransitionError):
            _control(runtime, action, instance_id)
    assert instance_row(runtime, instance_id).status == "cancelled"


def test_retry_reruns_only_failed_steps(runtime: Any, cluster: Any, http_server: Any) -> None:
    key = uuid.uuid4().hex
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("first", "transform", {"output": {"v": 1}}),
        node("call", "http", {"url": f"{http_server.base_url}/flaky/{key}?fail=1"}),
        node("end", "noop"),
    ], [edge("start", "first"), edge("first", "call"), edge("call", "end")])
    instance_id = start(runtime, wf)
    assert wait_status(runtime, instance_id).status == "failed"
    before = steps(runtime, instance_id)
    _control(runtime, "retry", instance_id)
    row = wait_status(runtime, instance_id)
    assert row.status == "completed", row.error_details
    after = steps(runtime, instance_id)
    assert after["first"].attempt == 1 and after["start"].attempt == 1
    assert after["first"].completed_at == before["first"].completed_at
    assert after["call"].attempt == 2 and after["call"].status == "completed"
    assert after["end"].status == "completed"
    assert http_server.count(f"/flaky/{key}") == 2


def test_idempotency_key_returns_first_instance(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [node("start", "trigger")], [])
    key = f"key-{uuid.uuid4().hex}"
    first = start(runtime, wf, {"a": 1}, idempotency_key=key)
    second = start(runtime, wf, {"a": 2}, idempotency_key=key)
    assert first == second
    with runtime.session_factory() as session:
        count = session.execute(select(func.count()).select_from(WorkflowInstance)
                                .where(WorkflowInstance.workflow_id == wf)).scalar_one()
    assert count == 1
    assert wait_status(runtime, first).status == "completed"


def test_inactive_workflow_does_not_start(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [node("start", "trigger")], [], is_active=False)
    with pytest.raises(InactiveWorkflowError):
        start(runtime, wf)


def test_instance_timeout_fails_instance(runtime: Any, cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"), node("wait", "delay", {"seconds": 60}), node("end", "noop"),
    ], [edge("start", "wait"), edge("wait", "end")], configuration={"execution_timeout_ms": 1500})
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id, timeout=30)
    assert row.status == "failed"
    assert "timed out" in (row.error_details or "")
    recorded = steps(runtime, instance_id)
    assert recorded["wait"].status == "failed" and "end" not in recorded


def test_step_timeout_bounds_one_attempt(runtime: Any, cluster: Any, http_server: Any) -> None:
    path = f"/slow/{uuid.uuid4().hex}"
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("call", "http", {"url": f"{http_server.base_url}{path}?seconds=5"},
             timeout_seconds=1, retries=0),
    ], [edge("start", "call")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id, timeout=30)
    assert row.status == "failed"
    call = steps(runtime, instance_id)["call"]
    assert call.status == "failed" and "timeout" in (call.error_message or "")
    assert call.duration_ms is not None and call.duration_ms < 5000


def test_expression_errors_fail_the_step_naming_the_expression(runtime: Any,
                                                               cluster: Any) -> None:
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("after", "noop"),
    ], [edge("start", "after", condition="input.missing > 1")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "failed"
    recorded = steps(runtime, instance_id)
    assert recorded["start"].status == "failed"
    assert "input.missing > 1" in (recorded["start"].error_message or "")
    assert "start" in (row.error_details or "")

    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("check", "condition", {"expression": "input.nope == 1"}, retries=2),
    ], [edge("start", "check")])
    instance_id = start(runtime, wf)
    row = wait_status(runtime, instance_id)
    assert row.status == "failed"
    check = steps(runtime, instance_id)["check"]
    # An evaluation error is permanent: no retries are spent on it.
    assert check.retry_count == 0 and "input.nope == 1" in (check.error_message or "")


def test_late_branch_after_a_failure_is_recorded_but_changes_nothing(
        runtime: Any, cluster: Any, http_server: Any) -> None:
    path = f"/slow/{uuid.uuid4().hex}"
    # `bad` fails only after `slow` has surely been claimed: a step still pending when its
    # instance has ended is never claimed, and that is not what this test is about.
    wf = make_workflow(runtime, [
        node("start", "trigger"),
        node("pause", "delay", {"seconds": 1.0}),
        node("bad", "transform", {"output": "{{ input.missing }}"}),
        node("slow", "http", {"url": f"{http_server.base_url}{path}?seconds=2.5"}),
        node("after_slow", "noop"),
    ], [edge("start", "pause"), edge("pause", "bad"), edge("start", "slow"),
        edge("slow", "after_slow")])
    instance_id = start(runtime, wf)
    failed = wait_status(runtime, instance_id)
    assert failed.status == "failed" and "bad" in (failed.error_details or "")
    wait_until(lambda: steps(runtime, instance_id)["slow"].status == "completed", 20,
               message="the slow branch to finish")
    row = instance_row(runtime, instance_id)
    assert row.status == "failed" and row.completed_at == failed.completed_at
    assert row.error_details == failed.error_details
    assert "after_slow" not in steps(runtime, instance_id)
