"""An instance that fails skips its steps that never started; running ones may still finish."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from models.db import transaction
from models.steps import claim_step
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from worker.orchestrator import record_outcome
from worker.results import NodeResult
from worker.step_run import StepFailure


@pytest.fixture(scope="module")
def runtime(settings: Any) -> Iterator[Any]:
    """A runtime that decides but never sends (no Celery app): the test runs the steps."""
    from worker.runtime import build_runtime

    rt = build_runtime(settings)
    yield rt
    rt.engine.dispose()


def _claim(runtime: Any, instance_id: Any, node_id: str) -> Any:
    step_id = steps(runtime, instance_id)[node_id].id
    with transaction(runtime.session_factory) as session:
        claimed = claim_step(session, step_id, 30, f"task-{node_id}")
    assert claimed is not None, f"{node_id} was not claimable"
    return claimed


def test_failure_skips_pending_steps_and_records_a_late_running_one(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), node("bad", "noop"), node("running", "noop"),
                  node("waiting", "noop"), node("after", "noop")],
        [edge("start", "bad"), edge("start", "running"), edge("start", "waiting"),
         edge("running", "after")])
    instance_id = start(runtime, workflow_id)
    record_outcome(runtime, _claim(runtime, instance_id, "start"), NodeResult({}))
    running = _claim(runtime, instance_id, "running")

    record_outcome(runtime, _claim(runtime, instance_id, "bad"),
                   StepFailure("boom", permanent=True))

    instance = instance_row(runtime, instance_id)
    assert instance.status == "failed" and "'bad' failed: boom" in (instance.error_details or "")
    after_failure = steps(runtime, instance_id)
    assert after_failure["waiting"].status == "skipped"
    assert after_failure["waiting"].error_message == "not run: node 'bad' failed"
    assert after_failure["running"].status == "running"
    assert (instance.execution_metrics or {})["skipped_count"] == 1

    record_outcome(runtime, running, NodeResult({"late": True}))
    late = steps(runtime, instance_id)
    assert late["running"].status == "completed" and late["running"].output_data == {"late": True}
    assert "after" not in late  # the ended instance is not planned again
    assert instance_row(runtime, instance_id).completed_at == instance.completed_at
