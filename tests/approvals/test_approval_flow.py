"""Approvals end to end: real worker and scheduler processes, the real API app, real SMTP sink.

The approval step must hold no worker slot, route through `approved` / `rejected`, record
who decided and when, refuse callers without the role (403) and second decisions (409),
count expiry as rejection within the reconciler's period, and expire on cancel.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

from models.approval import WorkflowApproval
from models.db import transaction
from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status
from tests.processes import wait_until
from worker.control import after_control, cancel

pytestmark = pytest.mark.slow

ROLE = "release-manager"


def _workflow(runtime: Any, expires: float | None = None,
              configuration: dict[str, Any] | None = None) -> uuid.UUID:
    config: dict[str, Any] = {"approver_role": ROLE,
                              "message": "Release {{ input.version }}?",
                              "data": {"version": "{{ input.version }}"}}
    if expires is not None:
        config["expires_in_seconds"] = expires
    nodes = [node("start", "trigger"), node("ask", "approval", config),
             node("ship", "transform", {"output": {"shipped": "{{ input.version }}"}}),
             node("stop", "transform", {"output": {"stopped": True}})]
    edges = [edge("start", "ask"), edge("ask", "ship", "approved"),
             edge("ask", "stop", "rejected")]
    return make_workflow(runtime, nodes, edges, configuration)


def _pending_approval(api: FlaskClient, headers: dict[str, str],
                      instance_id: uuid.UUID) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        body = api.get(f"/api/approvals?status=pending&instance_id={instance_id}",
                       headers=headers).get_json()
        return body["items"][0] if body["items"] else None

    return wait_until(find, 30.0, interval=0.1, message="a pending approval")


def test_approve_routes_approved_and_records_who_and_when(
        runtime: Any, cluster: Any, api: FlaskClient,
        token_for: Callable[..., dict[str, str]]) -> None:
    viewer = token_for("viewer", name="vera-viewer")
    approver = token_for(ROLE, name="rita-release")
    instance_id = start(runtime, _workflow(runtime), {"version": "1.2.3"})
    approval = _pending_approval(api, viewer, instance_id)
    assert approval["approval_message"] == "Release 1.2.3?"
    assert approval["approval_data"] == {"version": "1.2.3"}
    assert approval["approver_role"] == ROLE
    assert steps(runtime, instance_id)["ask"].status == "waiting_approval"

    refused = api.post(f"/api/approvals/{approval['id']}/approve",
                       headers=token_for("operator", "editor", name="otto"), json={})
    assert refused.status_code == 403
    assert api.get(f"/api/approvals/{approval['id']}", headers=viewer).get_json()["status"] \
        == "pending"

    decided = api.post(f"/api/approvals/{approval['id']}/approve", headers=approver,
                       json={"comment": "ship it"})
    assert decided.status_code == 200, decided.get_json()
    instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "completed", instance.error_details
    rows = steps(runtime, instance_id)
    assert rows["ask"].output_data == {"approved": True, "decided_by": "rita-release",
                                       "comment": "ship it"}
    assert rows["ship"].status == "completed" and rows["stop"].status == "skipped"
    assert instance.output_data == {"ship": {"shipped": "1.2.3"}}
    with runtime.session_factory() as session:
        row = session.get(WorkflowApproval, uuid.UUID(approval["id"]))
        assert row is not None
        assert (row.status, row.approver_user_id, row.comment) == (
            "approved", "rita-release", "ship it")
        assert row.responded_at is not None and row.responded_at >= row.requested_at

    again = api.post(f"/api/approvals/{approval['id']}/reject", headers=approver,
                     json={"reason": "changed my mind"})
    assert again.status_code == 409


def test_reject_routes_rejected(runtime: Any, cluster: Any, api: FlaskClient,
                               token_for: Callable[..., dict[str, str]]) -> None:
    admin = token_for("admin", name="ada-admin")
    instance_id = start(runtime, _workflow(runtime), {"version": "2.0.0"})
    approval = _pending_approval(api, admin, instance_id)
    decided = api.post(f"/api/approvals/{approval['id']}/reject", headers=admin,
                       json={"reason": "freeze week"})
    assert decided.status_code == 200
    assert decided.get_json()["approver_user_id"] == "ada-admin"
    instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "completed", instance.error_details
    rows = steps(runtime, instance_id)
    assert rows["ask"].output_data == {"approved": False, "decided_by": "ada-admin",
                                       "comment": "freeze week"}
    assert rows["ask"].selected_handle == "rejected"
    assert rows["stop"].status == "completed" and rows["ship"].status == "skipped"


def test_expiry_routes_as_rejection(runtime: Any, cluster: Any, api: FlaskClient,
                                   token_for: Callable[..., dict[str, str]]) -> None:
    viewer = token_for("viewer", name="vic")
    instance_id = start(runtime, _workflow(runtime, expires=1), {"version": "3"})
    approval = _pending_approval(api, viewer, instance_id)
    # Deadline: the expiry (1 s) plus a few reconciler periods and the hop to the worker.
    instance = wait_status(runtime, instance_id, timeout=15)
    assert instance.status == "completed", instance.error_details
    rows = steps(runtime, instance_id)
    assert rows["ask"].selected_handle == "rejected"
    assert rows["ask"].output_data["approved"] is False
    assert rows["stop"].status == "completed" and rows["ship"].status == "skipped"
    final = api.get(f"/api/approvals/{approval['id']}", headers=viewer).get_json()
    assert final["status"] == "expired"
    late = api.post(f"/api/approvals/{approval['id']}/approve",
                    headers=token_for("admin", name="late-admin"), json={})
    assert late.status_code == 409


def test_cancel_expires_pending_approvals(runtime: Any, cluster: Any, api: FlaskClient,
                                         token_for: Callable[..., dict[str, str]]) -> None:
    viewer = token_for("viewer", name="vin")
    instance_id = start(runtime, _workflow(runtime), {"version": "4"})
    approval = _pending_approval(api, viewer, instance_id)
    with transaction(runtime.session_factory) as session:
        result = cancel(session, instance_id)
    after_control(runtime, result)
    final = api.get(f"/api/approvals/{approval['id']}", headers=viewer).get_json()
    assert final["status"] == "expired"
    refused = api.post(f"/api/approvals/{approval['id']}/approve",
                       headers=token_for(ROLE, name="rex"), json={})
    assert refused.status_code == 409


def test_approval_requested_notice_emails_approvers(
        runtime: Any, cluster: Any, api: FlaskClient, sink: Any,
        token_for: Callable[..., dict[str, str]]) -> None:
    viewer = token_for("viewer", name="val")
    notify = {"notify": {"on_approval_requested": [{
        "channel": "email", "recipients": ["approvers@example.test"],
        "subject": "Approve release {{ input.version }}",
        "message": "{{ approval.message }} (role {{ approval.approver_role }})"}]}}
    instance_id = start(runtime, _workflow(runtime, configuration=notify), {"version": "5.1"})
    approval = _pending_approval(api, viewer, instance_id)
    mail = wait_until(lambda: next((m for m in sink.messages
                                    if m["Subject"] == "Approve release 5.1"), None),
                      30.0, interval=0.1, message="the approval-requested email")
    assert mail.get_payload(decode=True).decode().strip() == \
        f"Release 5.1? (role {ROLE})"
    wait_until(lambda: api.get(f"/api/approvals/{approval['id']}", headers=viewer)
               .get_json()["notifications_sent"] == 1, 30.0, message="notifications_sent")
    listed = api.get(f"/api/workflow-notifications?instance_id={instance_id}",
                     headers=viewer).get_json()["items"]
    assert [(n["notification_type"], n["status"]) for n in listed] == [
        ("on_approval_requested", "sent")]


def test_concurrent_decisions_decide_once(runtime: Any, cluster: Any, api: FlaskClient,
                                         token_for: Callable[..., dict[str, str]]) -> None:
    import threading

    admin = token_for("admin", name="ann-admin")
    instance_id = start(runtime, _workflow(runtime), {"version": "6"})
    approval = _pending_approval(api, admin, instance_id)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def decide(action: str, body: dict[str, str]) -> None:
        client = api.application.test_client()
        barrier.wait()
        statuses.append(client.post(f"/api/approvals/{approval['id']}/{action}",
                                    headers=admin, json=body).status_code)

    threads = [threading.Thread(target=decide, args=("approve", {"comment": "a"})),
               threading.Thread(target=decide, args=("reject", {"reason": "r"}))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 409]
    instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "completed"
    rows = steps(runtime, instance_id)
    taken = [name for name in ("ship", "stop") if rows[name].status == "completed"]
    assert len(taken) == 1
