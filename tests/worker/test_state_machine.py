"""The step state machine and admission against real PostgreSQL (no worker processes needed).

Every transition is a fenced conditional UPDATE: these tests drive them directly and check
that stale attempts and duplicate claims change nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from sqlalchemy import text

from models.db import autocommit, transaction
from models.step_recovery import release_lost_step
from models.steps import claim_step, finish_step, heartbeat
from tests.e2e.helpers import instance_row, make_workflow, node, start, steps
from worker import control
from worker.reconciler import expire_leases


def _cancel(runtime: Any, *instance_ids: uuid.UUID) -> None:
    for instance_id in instance_ids:
        with transaction(runtime.session_factory) as session:
            try:
                control.cancel(session, instance_id)
            except control.TransitionError:
                pass


def _single_step_flow(runtime: Any) -> uuid.UUID:
    return make_workflow(runtime, [node("only", "noop")], [])


def test_claims_asynchronous_commit_stays_with_the_claim(runtime: Any) -> None:
    """The claim turns off `synchronous_commit` for its own commit only: the pooled
    connection it ran on, and the next transaction on it, still commit synchronously."""
    instance_id = start(runtime, _single_step_flow(runtime))
    try:
        step_id = steps(runtime, instance_id)["only"].id
        with autocommit(runtime.engine) as connection:
            assert claim_step(connection, step_id, 30, "task-1") is not None
            setting = connection.execute(text("SHOW synchronous_commit")).scalar_one()
        assert setting == "on"
        with transaction(runtime.session_factory) as session:
            assert release_lost_step(session, step_id, 1)
        with transaction(runtime.session_factory) as session:
            assert claim_step(session, step_id, 30, "task-2") is not None
            assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
        with transaction(runtime.session_factory) as session:
            assert session.execute(text("SHOW synchronous_commit")).scalar_one() == "on"
    finally:
        _cancel(runtime, instance_id)


def test_claim_is_fenced_by_status_and_attempt(runtime: Any) -> None:
    instance_id = start(runtime, _single_step_flow(runtime))
    try:
        step_id = steps(runtime, instance_id)["only"].id
        with transaction(runtime.session_factory) as session:
            first = claim_step(session, step_id, 30, "task-1")
        with transaction(runtime.session_factory) as session:
            duplicate = claim_step(session, step_id, 30, "task-2")
        assert first is not None and first.attempt == 1
        assert duplicate is None
        with transaction(runtime.session_factory) as session:
            assert heartbeat(session, step_id, 1, 30)
            assert not heartbeat(session, step_id, 0, 30)
            assert release_lost_step(session, step_id, 1)
        with transaction(runtime.session_factory) as session:
            second = claim_step(session, step_id, 30, "task-3")
        assert second is not None and second.attempt == 2
        with transaction(runtime.session_factory) as session:
            late = finish_step(session, step_id, expected_status="running",
                               new_status="completed", output={"late": True}, handle=None,
                               error=None, attempt=1)
            current = finish_step(session, step_id, expected_status="running",
                                  new_status="completed", output={"ok": True}, handle=None,
                                  error=None, attempt=2)
        assert not late and current
        row = steps(runtime, instance_id)["only"]
        assert row.status == "completed" and row.output_data == {"ok": True}
    finally:
        _cancel(runtime, instance_id)


def test_expired_lease_goes_back_to_pending_then_fails_at_the_cap(runtime: Any) -> None:
    capped = dataclasses.replace(runtime, settings=runtime.settings.replace(
        max_delivery_attempts=2))
    instance_id = start(capped, _single_step_flow(capped))
    try:
        step_id = steps(capped, instance_id)["only"].id
        for attempt in (1, 2):
            with transaction(capped.session_factory) as session:
                claimed = claim_step(session, step_id, 30, None)
                assert claimed is not None and claimed.attempt == attempt
                session.execute(text("UPDATE workflow_executions SET lease_expires_at = "
                                     "now() - interval '1 second' WHERE id = :id"),
                                {"id": step_id})
            expire_leases(capped)
            expected = "pending" if attempt == 1 else "failed"
            assert steps(capped, instance_id)["only"].status == expected
        row = instance_row(capped, instance_id)
        assert row.status == "failed" and "only" in (row.error_details or "")
    finally:
        _cancel(capped, instance_id)


def test_admission_respects_limit_and_priority(runtime: Any) -> None:
    runtime = dataclasses.replace(runtime, settings=runtime.settings.replace(
        max_concurrent_workflows=1))
    wf = make_workflow(runtime, [node("wait", "delay", {"seconds": 60})], [])
    with transaction(runtime.session_factory) as session:
        session.execute(text("UPDATE workflow_instances SET status = 'cancelled' "
                             "WHERE status IN ('pending', 'running', 'paused')"))
    low = start(runtime, wf, priority="low")           # takes the only slot
    normal = start(runtime, wf, priority="normal")
    high = start(runtime, wf, priority="high")
    try:
        assert [instance_row(runtime, i).status for i in (low, normal, high)] == \
            ["running", "pending", "pending"]
        _cancel(runtime, low)
        control.after_control(runtime, control.ControlResult(instance_row(runtime, low)))
        assert [instance_row(runtime, i).status for i in (normal, high)] == \
            ["pending", "running"]
        # Paused instances hold no slot.
        with transaction(runtime.session_factory) as session:
            control.pause(session, high)
        control.after_control(runtime, control.ControlResult(instance_row(runtime, high)))
        assert instance_row(runtime, normal).status == "running"
    finally:
        _cancel(runtime, low, normal, high)
