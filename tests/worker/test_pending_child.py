"""A sub-workflow child still pending when its parent is paused waits for the parent."""

from __future__ import annotations

from typing import Any

from models.db import transaction
from models.workflow import Workflow
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from worker import control
from worker.admission import admit_and_dispatch
from worker.launch import create_instance


def test_a_pending_child_of_a_paused_parent_starts_only_after_the_parent_resumes(
        runtime: Any) -> None:
    parent_wf = make_workflow(runtime, [node("call", "noop")], [])
    child_wf = make_workflow(runtime, [node("a", "noop"), node("b", "noop")], [edge("a", "b")])
    parent_id = start(runtime, parent_wf)
    call_step = steps(runtime, parent_id)["call"].id
    with transaction(runtime.session_factory) as session:
        control.pause(session, parent_id)
    # The parent's step launched a child just before the pause took effect.
    with transaction(runtime.session_factory) as session:
        child_workflow = session.get(Workflow, child_wf)
        child, _ = create_instance(session, child_workflow, {}, "high",
                                   parent_execution_id=call_step)
        child_id = child.id
    try:
        admit_and_dispatch(runtime)
        assert instance_row(runtime, child_id).status == "pending"
        assert steps(runtime, child_id) == {}

        with transaction(runtime.session_factory) as session:
            control.resume(session, parent_id)
        admit_and_dispatch(runtime)
        assert instance_row(runtime, parent_id).status == "running"
        assert instance_row(runtime, child_id).status == "running"
        assert steps(runtime, child_id)["a"].status == "pending"
    finally:
        with transaction(runtime.session_factory) as session:
            for instance_id in (child_id, parent_id):
                try:
                    control.cancel(session, instance_id)
                except control.TransitionError:
                    pass
