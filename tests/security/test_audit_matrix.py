"""Every mutating endpoint of the role matrix writes exactly one audit row per call.

Uses tests/api/test_role_matrix.ENDPOINTS (the list every endpoint owner appends to), so a
new mutating endpoint is covered here as soon as it is in the matrix. Each call is made once
by a role below the minimum (denied) and once by the minimum role (admitted, whatever the
outcome), and the row must name the actor, the outcome and the status code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.security import AuditLogEntry
from tests.api.test_role_matrix import ENDPOINTS, LADDER

Headers = dict[str, str]
MUTATING = [entry for entry in ENDPOINTS if entry[0] in ("POST", "PUT", "PATCH", "DELETE")]


def _rows_after(factory: sessionmaker[Session], last_id: int) -> list[AuditLogEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditLogEntry).where(AuditLogEntry.id > last_id)
                                    .order_by(AuditLogEntry.id)))


def _last_id(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.coalesce(func.max(AuditLogEntry.id), 0))) or 0)


def test_the_matrix_has_mutating_endpoints() -> None:
    assert len(MUTATING) >= 5


@pytest.mark.parametrize(("method", "path", "least", "body"), MUTATING,
                         ids=[f"{m} {p}" for m, p, _, _ in MUTATING])
def test_each_mutating_call_is_audited(
    client: FlaskClient, token_for: Callable[..., Headers],
    session_factory: sessionmaker[Session], method: str, path: str, least: str,
    body: dict[str, Any] | None,
) -> None:
    # Endpoints open to any token (approvals decide inside) are called by a viewer.
    least = least if least in LADDER else LADDER[0]
    callers = [least]
    if least != LADDER[0]:
        callers.insert(0, LADDER[LADDER.index(least) - 1])
    for role in callers:
        name = f"audited-{role}"
        headers = token_for(role, name=name)
        before = _last_id(session_factory)
        response = client.open(path, method=method, headers=headers, json=body,
                               environ_base={"REMOTE_ADDR": "127.0.0.5"})
        rows = _rows_after(session_factory, before)
        assert len(rows) == 1, (role, [r.action for r in rows])
        row = rows[0]
        assert row.actor == name
        assert row.status_code == response.status_code
        assert row.action.startswith(f"{method} /api/")
        assert row.client_address == "127.0.0.5"
        assert row.request_id == response.headers["X-Request-ID"]
        if role != least:
            assert (response.status_code, row.outcome) == (403, "denied")
        else:
            assert response.status_code not in (401, 403)
            assert row.outcome in ("success", "failure")


def test_an_audit_row_keeps_what_the_endpoint_named(
    client: FlaskClient, token_for: Callable[..., Headers],
    session_factory: sessionmaker[Session],
) -> None:
    headers = token_for("admin", name="audited-details")
    document = {"nodes": [{"id": "a", "type": "noop", "position": {"x": 0, "y": 0},
                           "data": {}}], "edges": []}
    created = client.post("/api/workflows", headers=headers,
                          json={"name": "audited details", "workflow_data": document})
    assert created.status_code == 201, created.json
    workflow_id = created.json["id"]
    before = _last_id(session_factory)
    started = client.post(f"/api/workflows/{workflow_id}/execute", headers=headers, json={})
    assert started.status_code == 202, started.json
    (row,) = _rows_after(session_factory, before)
    assert (row.resource_type, row.resource_id) == ("workflow-instances", started.json["id"])
    assert row.details == {"workflow_id": workflow_id, "created": True}
    assert row.occurred_at is not None and row.id > before


def test_an_app_on_its_own_engine_commits_each_row_alone(app_settings: Any) -> None:
    """Production's shape: the app's sessions on an engine, each row one autocommit write.
    A call whose own work rolls back (422 here) is recorded all the same. Each call takes
    one pooled connection for its token lookup and audit row (api.context's request
    connection), and a read takes just one in all: its lookup runs on its session."""
    from sqlalchemy import delete, event

    from api.app import create_app
    from api.auth import issue_token
    from models.db import make_engine, make_session_factory
    from models.security import ApiToken
    from models.workflow import Workflow

    engine = make_engine(app_settings)
    factory = make_session_factory(engine)
    name = "audited-on-an-engine"
    try:
        with factory() as session:
            _, token = issue_token(session, name=name, roles=["editor"])
            session.commit()
        client = create_app(app_settings, session_factory=factory).test_client()
        headers = {"Authorization": f"Bearer {token}"}
        checkouts: list[int] = []
        event.listen(engine, "checkout", lambda *_: checkouts.append(1))
        before = _last_id(factory)
        checkouts.clear()
        refused = client.post("/api/workflows", json={"name": ""}, headers=headers)
        refused_checkouts = len(checkouts)
        created = client.post("/api/workflows", headers=headers, json={
            "name": f"{name}-workflow", "workflow_data": {"nodes": [
                {"id": "a", "type": "noop", "position": {"x": 0, "y": 0}, "data": {}}],
                "edges": []}})
        checkouts.clear()
        read = client.get(f"/api/workflows/{created.json['id']}", headers=headers)
        read_checkouts = len(checkouts)
        rows = _rows_after(factory, before)
        assert [(row.actor, row.status_code, row.outcome) for row in rows] == [
            (name, refused.status_code, "failure"), (name, created.status_code, "success")]
        assert refused.status_code == 422 and created.status_code == 201
        assert read.status_code == 200
        assert (refused_checkouts, read_checkouts) == (1, 1)
    finally:
        with factory() as session:
            session.execute(delete(AuditLogEntry).where(AuditLogEntry.actor == name))
            session.execute(delete(Workflow).where(Workflow.name == f"{name}-workflow"))
            session.execute(delete(ApiToken).where(ApiToken.name == name))
            session.commit()
        engine.dispose()
