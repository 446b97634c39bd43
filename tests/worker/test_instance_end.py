"""How an instance ends: a failure skips its steps that never started (running ones may
still finish); the completion that ends it writes its output and metrics from its steps."""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import claim_node, refuse_calls
from worker import planning
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


def test_the_completion_that_ends_an_instance_writes_what_its_steps_say(
        runtime: Any, monkeypatch: Any) -> None:
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), node("flaky", "noop", retries=1,
                                              retry_backoff_seconds=0), node("last", "noop")],
        [edge("start", "flaky"), edge("flaky", "last")])
    instance_id = start(runtime, workflow_id)
    record_outcome(runtime, claim_node(runtime, instance_id, "start"), NodeResult({"s": 1}))
    record_outcome(runtime, claim_node(runtime, instance_id, "flaky"),
                   StepFailure("try again", permanent=False))
    record_outcome(runtime, claim_node(runtime, instance_id, "flaky"), NodeResult({"f": 2}))
    assert instance_row(runtime, instance_id).status == "running"
    # The last completion read every step of the instance: ending it reads none again.
    refuse_calls(monkeypatch, planning, ["step_records_of"],
                 "the completion's own read has what ending the instance needs")

    record_outcome(runtime, claim_node(runtime, instance_id, "last"), NodeResult({"l": 3}))

    instance = instance_row(runtime, instance_id)
    assert instance.status == "completed" and instance.progress == 100
    assert instance.output_data == {"last": {"l": 3}}
    recorded = list(steps(runtime, instance_id).values())
    metrics = dict(instance.execution_metrics or {})
    assert metrics.pop("wall_time_ms") >= 0
    assert metrics == planning.step_metrics(recorded)
    assert (metrics["step_count"], metrics["retry_count"]) == (3, 1)


def test_a_leaf_among_several_completes_without_reading_every_output(
        runtime: Any, monkeypatch: Any) -> None:
    """Each leaf of a fan-out reading every output would grow with the width squared."""
    workflow_id = make_workflow(
        runtime, [node("start", "noop"), node("left", "noop"), node("right", "noop")],
        [edge("start", "left"), edge("start", "right")])
    instance_id = start(runtime, workflow_id)
    record_outcome(runtime, claim_node(runtime, instance_id, "start"), NodeResult({}))
    asked: list[bool] = []
    complete = planning.lock_instance_and_complete_step

    def recording(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs["with_outputs"])
        return complete(*args, **kwargs)
    monkeypatch.setattr(planning, "lock_instance_and_complete_step", recording)

    record_outcome(runtime, claim_node(runtime, instance_id, "left"), NodeResult({"l": 1}))
    record_outcome(runtime, claim_node(runtime, instance_id, "right"), NodeResult({"r": 2}))

    assert asked == [False, False]
    instance = instance_row(runtime, instance_id)
    assert instance.status == "completed"
    assert instance.output_data == {"left": {"l": 1}, "right": {"r": 2}}
