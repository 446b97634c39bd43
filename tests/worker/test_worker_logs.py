"""A worker's structured logs: JSON lines with the instance, node and attempt bound."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.helpers import edge, make_workflow, node, start, wait_status
from tests.processes import wait_until, worker_process

pytestmark = pytest.mark.slow


def test_json_logs_name_instance_node_and_attempt(settings: Any) -> None:
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    runtime = build_runtime(settings)
    make_celery(settings, runtime)
    wf = make_workflow(runtime, [node("start", "trigger"), node("end", "noop")],
                       [edge("start", "end")])
    try:
        with worker_process(settings, extra_env={"LOG_FORMAT": "json"}) as worker:
            instance_id = start(runtime, wf)
            assert wait_status(runtime, instance_id).status == "completed"

            def step_events() -> list[dict[str, Any]]:
                events = []
                for line in worker.log().splitlines():
                    if line.startswith("{") and "step.done" in line:
                        events.append(json.loads(line))
                return events if len(events) >= 2 else []

            events = wait_until(step_events, 10, message="two step.done log lines")
    finally:
        runtime.engine.dispose()
    mine = [e for e in events if e["instance_id"] == str(instance_id)]
    assert {e["node_id"] for e in mine} == {"start", "end"}
    assert all(e["attempt"] == 1 and e["level"] == "info" and e["timestamp"] for e in mine)
