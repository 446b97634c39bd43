"""A completion whose successors its own result decides starts them in the same statement,
without reading the instance's steps back to plan; anything unusual takes the full plan."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from models.db import transaction
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import cancel_open_instances, claim_node, refuse_calls
from worker import control, planning
from worker.orchestrator import NOTHING, record_outcome


@pytest.fixture
def no_full_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the completion plans the ordinary way (reading the steps back)."""
    refuse_calls(monkeypatch, planning, ["advance", "lock_instance_and_complete_step"],
                 "the completion planned in full")


@contextmanager
def _started(runtime: Any, nodes: list[dict[str, Any]],
             edges: list[dict[str, Any]]) -> Iterator[uuid.UUID]:
    """A started instance of a new workflow; whatever of it is still open is cancelled after."""
    workflow_id = make_workflow(runtime, nodes, edges)
    try:
        yield start(runtime, workflow_id)
    finally:
        cancel_open_instances(runtime, workflow_id)


def _chain(runtime: Any, length: int) -> AbstractContextManager[uuid.UUID]:
    names = [f"n{index}" for index in range(length)]
    return _started(runtime, [node(name, "noop") for name in names],
                    [edge(a, b) for a, b in zip(names, names[1:], strict=False)])


def test_a_chain_step_starts_its_successor_and_counts_progress(
        runtime: Any, no_full_plan: None) -> None:
    with _chain(runtime, 3) as instance_id:
        after = record_outcome(runtime, claim_node(runtime, instance_id, "n0"), {"seen": 1})
        rows = steps(runtime, instance_id)
        assert rows["n0"].status == "completed" and rows["n0"].output_data == {"seen": 1}
        assert rows["n1"].status == "pending" and "n2" not in rows
        assert rows["n1"].queued_at is not None and rows["n1"].dispatched_at is not None
        assert [(ref.id, ref.node_id, ref.step_type) for ref in after.dispatch] == [
            (rows["n1"].id, "n1", "noop")]
        assert not after.instance_ended
        instance = instance_row(runtime, instance_id)
        assert after.dispatch[0].workflow_version_id == instance.workflow_version_id
        assert (instance.progress, instance.current_step) == (33, "n0")

        record_outcome(runtime, claim_node(runtime, instance_id, "n1"), {})
        assert instance_row(runtime, instance_id).progress == 66  # two of three decided
        assert steps(runtime, instance_id)["n2"].status == "pending"


def test_a_fan_out_starts_every_branch_in_document_order(
        runtime: Any, no_full_plan: None) -> None:
    with _started(runtime, [node("a", "noop"), node("c", "noop"), node("b", "noop")],
                  [edge("a", "b"), edge("a", "c")]) as instance_id:
        after = record_outcome(runtime, claim_node(runtime, instance_id, "a"), {})
        assert [ref.node_id for ref in after.dispatch] == ["c", "b"]
        rows = steps(runtime, instance_id)
        assert {ref.id for ref in after.dispatch} == {rows["b"].id, rows["c"].id}


def test_a_stale_attempt_changes_nothing(runtime: Any) -> None:
    with _chain(runtime, 2) as instance_id:
        claimed = claim_node(runtime, instance_id, "n0")
        stale = dataclasses.replace(claimed, attempt=claimed.attempt + 1)
        assert record_outcome(runtime, stale, {}) == NOTHING
        rows = steps(runtime, instance_id)
        assert rows["n0"].status == "running" and "n1" not in rows
        assert instance_row(runtime, instance_id).progress == 0


def test_a_paused_instance_records_the_successor_without_sending_it(runtime: Any) -> None:
    with _chain(runtime, 2) as instance_id:
        claimed = claim_node(runtime, instance_id, "n0")
        with transaction(runtime.session_factory) as session:
            control.pause(session, instance_id)
        after = record_outcome(runtime, claimed, {})
        assert after.dispatch == []
        rows = steps(runtime, instance_id)
        assert (rows["n0"].status, rows["n1"].status) == ("completed", "pending")
        assert instance_row(runtime, instance_id).status == "paused"


def test_a_successor_that_has_a_step_already_is_planned_in_full(runtime: Any) -> None:
    with _chain(runtime, 2) as instance_id:
        claimed = claim_node(runtime, instance_id, "n0")
        with transaction(runtime.session_factory) as session:
            session.execute(text(
                "INSERT INTO workflow_executions (instance_id, node_id, step_type, status,"
                " attempt, retry_count, completed_at) VALUES (:i, 'n1', 'noop', 'skipped',"
                " 0, 0, now())"), {"i": instance_id})
        after = record_outcome(runtime, claimed, {})
        assert after.dispatch == [] and after.instance_ended
        instance = instance_row(runtime, instance_id)
        assert (instance.status, instance.progress) == ("completed", 100)
        assert steps(runtime, instance_id)["n1"].status == "skipped"
