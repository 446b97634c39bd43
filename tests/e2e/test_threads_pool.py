"""`flowyard worker --pool threads`: pure steps run in threads of the worker's own process."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.cli.processes import flowyard, free_port, scrape
from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status
from tests.processes import settings_env, wait_until, worker_process

pytestmark = pytest.mark.slow

PURE_QUEUES = "trigger,noop,transform,condition"
WIDTH = 12


def _branching_fan_out(runtime: Any) -> Any:
    """A condition, then either a fan-out of WIDTH transforms and their join, or one step."""
    branches = [f"b{i}" for i in range(WIDTH)]
    total = " + ".join(f"nodes.{b}.output.i" for b in branches)
    return make_workflow(runtime, [
        node("start", "trigger"),
        node("check", "condition", {"expression": "input.n > 3"}),
        *[node(b, "transform", {"output": {"i": i, "n": "{{ input.n }}"}})
          for i, b in enumerate(branches)],
        node("join", "transform", {"output": {"sum": "{{ " + total + " }}"}}),
        node("small", "noop"),
    ], [
        edge("start", "check"),
        *[edge("check", b, handle="true") for b in branches],
        *[edge(b, "join") for b in branches],
        edge("check", "small", handle="false"),
    ])


def test_a_threads_worker_runs_pure_steps_without_child_processes(
        runtime: Any, e2e_settings: Any) -> None:
    workflow_id = _branching_fan_out(runtime)
    metrics_port = free_port()
    with worker_process(e2e_settings, queues=PURE_QUEUES, concurrency=4, pool="threads",
                        extra_args=["--metrics-port", str(metrics_port),
                                    "--metrics-address", "127.0.0.1"]) as worker:
        # Several instances at once: the four threads take their steps side by side.
        started = {n: start(runtime, workflow_id, {"n": n}) for n in (5, 7, 1)}
        rows = {n: wait_status(runtime, instance_id) for n, instance_id in started.items()}
        children = worker.children()
        # Counted in the worker's own process, each task just after its commit: 2 x (WIDTH
        # branches + join) transforms, at least (a step another test left in the session's
        # queues may run here too).
        succeeded = wait_until(lambda: _enough(_succeeded(metrics_port)), 10,
                               message="the worker's metrics to count every step")
    assert children == [], "a threads worker forks no pool processes"
    assert succeeded.get("condition", 0) >= 3 and succeeded.get("noop", 0) >= 1, succeeded
    for n, row in rows.items():
        assert row.status == "completed", (n, row.error_details, worker.log())
        recorded = steps(runtime, started[n])
        # Each step ran once (a skipped one never ran).
        assert {step.attempt for step in recorded.values() if step.status == "completed"} == {1}
        if n > 3:
            assert recorded["join"].output_data == {"sum": sum(range(WIDTH))}
            assert {recorded[f"b{i}"].output_data["n"] for i in range(WIDTH)} == {n}
            assert recorded["small"].status == "skipped"
        else:
            assert recorded["small"].status == "completed"
            assert recorded["join"].status == "skipped"


def _succeeded(metrics_port: int) -> dict[str, float]:
    counted = scrape(f"http://127.0.0.1:{metrics_port}", "flowyard_worker_")
    return {dict(labels)["type"]: value for (name, labels), value in counted.items()
            if name == "flowyard_worker_tasks_total" and ("outcome", "succeeded") in labels}


def _enough(succeeded: dict[str, float]) -> dict[str, float] | None:
    return succeeded if succeeded.get("transform", 0) >= 2 * (WIDTH + 1) else None


def test_threads_are_refused_for_queues_whose_steps_can_block(e2e_settings: Any) -> None:
    run = subprocess.run(flowyard("worker", "-Q", "noop,http", "--pool", "threads"),
                         env=settings_env(e2e_settings), capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 2, run.stderr
    assert "runs only the queues of pure node types" in run.stderr
    assert "not http" in run.stderr
