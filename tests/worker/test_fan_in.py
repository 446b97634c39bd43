"""A join's parents finishing one by one: the join is decided exactly when the last one ends."""

from __future__ import annotations

import uuid
from typing import Any

from models.db import transaction
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import claim_node
from worker import control
from worker.orchestrator import record_outcome
from worker.results import NodeResult


def _run(runtime: Any, instance_id: uuid.UUID, node_id: str) -> None:
    """Claim the node's pending step and record it completed, through the worker's path."""
    record_outcome(runtime, claim_node(runtime, instance_id, node_id),
                   NodeResult({"from": node_id}))


def test_the_join_waits_for_every_parent_then_runs_once(runtime: Any) -> None:
    parents = ["b1", "b2", "b3"]
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), *[node(p, "noop") for p in parents],
                  node("join", "noop")],
        [*[edge("start", p) for p in parents], *[edge(p, "join") for p in parents]])
    instance_id = start(runtime, workflow_id)
    try:
        _run(runtime, instance_id, "start")
        assert {n: s.status for n, s in steps(runtime, instance_id).items()} == {
            "start": "completed", "b1": "pending", "b2": "pending", "b3": "pending"}
        _run(runtime, instance_id, "b2")
        assert "join" not in steps(runtime, instance_id)
        assert instance_row(runtime, instance_id).progress == 40  # 2 of 5 nodes decided
        _run(runtime, instance_id, "b1")
        assert "join" not in steps(runtime, instance_id)
        assert instance_row(runtime, instance_id).progress == 60
        _run(runtime, instance_id, "b3")
        assert steps(runtime, instance_id)["join"].status == "pending"
        _run(runtime, instance_id, "join")
        instance = instance_row(runtime, instance_id)
        assert instance.status == "completed" and instance.progress == 100
    finally:
        with transaction(runtime.session_factory) as session:
            try:
                control.cancel(session, instance_id)
            except control.TransitionError:
                pass


def test_a_parent_behind_a_condition_still_lets_the_join_decide(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), node("a", "noop"), node("b", "noop"),
                  node("join", "noop")],
        [edge("start", "a"), edge("start", "b", condition="false"), edge("a", "join"),
         edge("b", "join")])
    instance_id = start(runtime, workflow_id)
    try:
        _run(runtime, instance_id, "start")
        assert steps(runtime, instance_id)["b"].status == "skipped"
        _run(runtime, instance_id, "a")  # b is decided (skipped): the join runs now
        assert steps(runtime, instance_id)["join"].status == "pending"
    finally:
        with transaction(runtime.session_factory) as session:
            try:
                control.cancel(session, instance_id)
            except control.TransitionError:
                pass
