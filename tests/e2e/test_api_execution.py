"""The execution API against real workers: execute, list, read, details, events, control."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.helpers import edge, make_workflow, node, wait_status

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api(e2e_settings: Any, runtime: Any) -> Iterator[Any]:
    from api.app import create_app

    app = create_app(e2e_settings, session_factory=runtime.session_factory,
                     celery_app=runtime.celery)
    yield app.test_client()


@pytest.fixture(scope="module")
def headers(runtime: Any) -> Iterator[dict[str, dict[str, str]]]:
    from sqlalchemy import delete

    from api.auth import issue_token
    from models.security import ApiToken, AuditLogEntry

    made = {}
    names = [f"e2e-{role}-{uuid.uuid4().hex[:6]}" for role in ("viewer", "operator")]
    for role, name in zip(("viewer", "operator"), names, strict=True):
        with runtime.session_factory() as session:
            _, token = issue_token(session, name=name, roles=[role])
            session.commit()
        made[role] = {"Authorization": f"Bearer {token}"}
    yield made
    # These calls commit for real; leave no tokens or audit rows for other test modules.
    with runtime.session_factory() as session:
        session.execute(delete(AuditLogEntry).where(AuditLogEntry.actor.in_(names)))
        session.execute(delete(ApiToken).where(ApiToken.name.in_(names)))
        session.commit()


def _flow(runtime: Any, seconds: float = 0) -> uuid.UUID:
    nodes = [node("start", "trigger"),
             node("shape", "transform", {"output": {"hello": "{{ input.name }}"}})]
    edges = [edge("start", "shape")]
    if seconds:
        nodes.append(node("wait", "delay", {"seconds": seconds}))
        edges.append(edge("shape", "wait"))
    return make_workflow(runtime, nodes, edges)


def test_execute_read_details_and_list(api: Any, headers: Any, runtime: Any,
                                       cluster: Any) -> None:
    wf = _flow(runtime)
    answer = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "ada"}},
                      headers=headers["operator"])
    assert answer.status_code == 202, answer.json
    instance_id = answer.json["id"]
    assert answer.json["status"] in ("pending", "running")
    wait_status(runtime, uuid.UUID(instance_id))
    one = api.get(f"/api/workflow-instances/{instance_id}", headers=headers["viewer"]).json
    assert one["status"] == "completed" and one["progress"] == 100
    assert one["output_data"] == {"shape": {"hello": "ada"}}
    assert one["completed_at"].endswith("Z")
    assert {"wall_time_ms", "step_count", "queue_wait_ms"} <= set(one["execution_metrics"])
    details = api.get(f"/api/workflow-instances/{instance_id}/details",
                      headers=headers["viewer"]).json
    by_node = {step["node_id"]: step for step in details["steps"]}
    assert by_node["shape"]["status"] == "completed"
    assert by_node["shape"]["output_data"] == {"hello": "ada"}
    assert by_node["shape"]["retry_count"] == 0 and by_node["shape"]["duration_ms"] >= 0
    assert details["approvals"] == [] and details["notifications"] == []
    listed = api.get(f"/api/workflow-instances?workflow_id={wf}&status=completed",
                     headers=headers["viewer"]).json
    assert listed["total"] == 1 and listed["items"][0]["id"] == instance_id
    events = api.get(f"/api/workflow-instances/{instance_id}/events",
                     headers=headers["viewer"])
    assert events.mimetype == "text/event-stream"
    assert "event: end" in events.get_data(as_text=True)


def test_execute_idempotency_inactive_and_roles(api: Any, headers: Any, runtime: Any,
                                                cluster: Any) -> None:
    wf = _flow(runtime)
    body = {"input": {"name": "x"}, "idempotency_key": f"k-{uuid.uuid4().hex}"}
    first = api.post(f"/api/workflows/{wf}/execute", json=body, headers=headers["operator"])
    again = api.post(f"/api/workflows/{wf}/execute", json=body, headers=headers["operator"])
    assert first.status_code == 202 and again.status_code == 200
    assert first.json["id"] == again.json["id"]
    assert api.post(f"/api/workflows/{wf}/execute", json={},
                    headers=headers["viewer"]).status_code == 403
    assert api.post(f"/api/workflows/{wf}/execute", json={"bogus": 1},
                    headers=headers["operator"]).status_code == 422
    inactive = make_workflow(runtime, [node("start", "trigger")], [], is_active=False)
    answer = api.post(f"/api/workflows/{inactive}/execute", json={},
                      headers=headers["operator"])
    assert answer.status_code == 409 and answer.json["error"]["code"] == "conflict"
    assert api.post(f"/api/workflows/{uuid.uuid4()}/execute", json={},
                    headers=headers["operator"]).status_code == 404
    wait_status(runtime, uuid.UUID(first.json["id"]))


def test_control_endpoints_and_conflicts(api: Any, headers: Any, runtime: Any,
                                         cluster: Any) -> None:
    wf = _flow(runtime, seconds=30)
    instance_id = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "y"}},
                           headers=headers["operator"]).json["id"]
    wait_status(runtime, uuid.UUID(instance_id), ("running",))
    paused = api.post(f"/api/workflow-executions/{instance_id}/pause",
                      headers=headers["operator"])
    assert paused.status_code == 200 and paused.json["status"] == "paused"
    assert api.post(f"/api/workflow-instances/{instance_id}/pause",
                    headers=headers["operator"]).status_code == 409
    assert api.post(f"/api/workflow-instances/{instance_id}/retry",
                    headers=headers["operator"]).status_code == 409
    resumed = api.post(f"/api/workflow-instances/{instance_id}/resume",
                       headers=headers["operator"])
    assert resumed.status_code == 200 and resumed.json["status"] in ("pending", "running")
    assert api.post(f"/api/workflow-executions/{instance_id}/cancel",
                    headers=headers["viewer"]).status_code == 403
    cancelled = api.post(f"/api/workflow-executions/{instance_id}/cancel",
                         headers=headers["operator"])
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    conflict = api.post(f"/api/workflow-executions/{instance_id}/resume",
                        headers=headers["operator"])
    assert conflict.status_code == 409
    assert api.post(f"/api/workflow-executions/{uuid.uuid4()}/pause",
                    headers=headers["operator"]).status_code == 404


def test_events_stream_follows_the_instance_live(api: Any, headers: Any, runtime: Any,
                                                 cluster: Any) -> None:
    import json

    wf = _flow(runtime, seconds=1)
    instance_id = api.post(f"/api/workflows/{wf}/execute", json={"input": {"name": "z"}},
                           headers=headers["operator"]).json["id"]
    response = api.get(f"/api/workflow-instances/{instance_id}/events",
                       headers=headers["viewer"])
    text = response.get_data(as_text=True)
    events = [chunk for chunk in text.split("\n\n") if chunk.strip()]
    payloads = [json.loads(chunk.split("data: ", 1)[1]) for chunk in events]
    statuses = [p["status"] for p in payloads]
    assert "running" in statuses and statuses[-1] == "completed"
    running = next(p for p in payloads if p["status"] == "running" and "wait" in p["steps"])
    assert running["steps"]["wait"] in ("pending", "running")
    assert events[-1].startswith("event: end")
    assert api.get(f"/api/workflow-instances/{uuid.uuid4()}/events",
                   headers=headers["viewer"]).status_code == 404
