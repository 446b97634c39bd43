"""An instance that fails skips its steps that never started; running ones may still finish."""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import claim_node
from worker.orchestrator import record_outcome
from worker.results import NodeResult
from worker.step_run import StepFailure


def test_failure_skips_pending_steps_and_records_a_late_running_one(runtime: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), node("bad", "noop"), node("running", "noop"),
                  node("waiting", "noop"), node("after", "noop")],
        [edge("start", "bad"), edge("start", "running"), edge("start", "waiting"),
         edge("running", "after")])
    instance_id = start(runtime, workflow_id)
    record_outcome(runtime, claim_node(runtime, instance_id, "start"), NodeResult({}))
    running = claim_node(runtime, instance_id, "running")

    record_outcome(runtime, claim_node(runtime, instance_id, "bad"),
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
