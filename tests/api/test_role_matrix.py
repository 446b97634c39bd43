"""Every /api endpoint refuses roles below its minimum (403) and admits its minimum role.

Append your endpoints to ENDPOINTS: (method, path, least role, JSON body or None). Paths may
name ids that do not exist: the admitted role then sees a 404/422, never a 401/403.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask.testing import FlaskClient

Headers = dict[str, str]
MISSING = "00000000-0000-0000-0000-000000000000"
LADDER = ["viewer", "operator", "editor", "admin"]
# An approval role grants nothing by itself.
APPROVAL_ONLY = "security-lead"
# Open to any valid token; the endpoint checks the row itself (approval decisions).
ANY_TOKEN = "*"

ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("GET", "/api/tokens", "admin", None),
    ("POST", "/api/tokens", "admin", {"name": "matrix", "roles": ["viewer"]}),
    ("DELETE", f"/api/tokens/{MISSING}", "admin", None),
    # workflows (api/resources/workflows.py)
    ("GET", "/api/workflows", "viewer", None),
    ("POST", "/api/workflows", "editor", {"name": "matrix", "workflow_data": {
        "nodes": [{"id": "a", "type": "noop", "position": {"x": 0, "y": 0}, "data": {}}],
        "edges": []}}),
    ("GET", f"/api/workflows/{MISSING}", "viewer", None),
    ("PUT", f"/api/workflows/{MISSING}", "editor", {"name": "matrix"}),
    ("DELETE", f"/api/workflows/{MISSING}", "editor", None),
    # triggers (api/resources/triggers.py)
    ("GET", f"/api/workflows/{MISSING}/triggers", "viewer", None),
    ("POST", f"/api/workflows/{MISSING}/triggers", "editor", {"trigger_type": "manual"}),
    ("GET", f"/api/triggers/{MISSING}", "viewer", None),
    ("PUT", f"/api/triggers/{MISSING}", "editor", {"is_active": False}),
    ("DELETE", f"/api/triggers/{MISSING}", "editor", None),
    # secrets and the audit log (api/resources/secrets.py, audit_log.py)
    ("GET", "/api/secrets", "editor", None),
    ("POST", "/api/secrets", "editor", {"name": "MATRIX_SECRET", "value": "v"}),
    ("DELETE", f"/api/secrets/{MISSING}", "editor", None),
    ("GET", "/api/audit-log", "admin", None),
    # events (api/resources/events.py)
    ("POST", "/api/events", "operator", {"source": "matrix", "type": "t", "payload": {}}),
    # approvals and notifications (api/resources/approvals.py, notifications.py); deciding
    # depends on the approval's role and is tested in tests/api/test_approvals_api.py
    ("GET", "/api/approvals", "viewer", None),
    ("GET", f"/api/approvals/{MISSING}", "viewer", None),
    ("GET", "/api/workflow-notifications", "viewer", None),
    ("GET", f"/api/workflow-notifications/{MISSING}", "viewer", None),
    ("POST", f"/api/approvals/{MISSING}/approve", ANY_TOKEN, {"comment": "ok"}),
    ("POST", f"/api/approvals/{MISSING}/reject", ANY_TOKEN, {"reason": "no"}),
    # templates and portable documents (api/resources/templates.py)
    ("GET", "/api/templates", "viewer", None),
    ("POST", f"/api/templates/{MISSING}/instantiate", "editor", {"name": "matrix"}),
    ("GET", f"/api/workflows/{MISSING}/export", "viewer", None),
    ("POST", "/api/workflows/import", "editor", {"format": "flowyard.workflow/v1"}),
    # execution and instances (api/resources/instances.py)
    ("POST", f"/api/workflows/{MISSING}/execute", "operator", {"input": {}}),
    ("GET", "/api/workflow-instances", "viewer", None),
    ("GET", f"/api/workflow-instances/{MISSING}", "viewer", None),
    ("GET", f"/api/workflow-instances/{MISSING}/details", "viewer", None),
    ("GET", f"/api/workflow-instances/{MISSING}/events", "viewer", None),
    *[("POST", f"/api/workflow-executions/{MISSING}/{action}", "operator", None)
      for action in ("pause", "resume", "cancel")],
    *[("POST", f"/api/workflow-instances/{MISSING}/{action}", "operator", None)
      for action in ("pause", "resume", "cancel", "retry")],
]


def _below(role: str) -> list[str]:
    if role == ANY_TOKEN:
        return []
    return [APPROVAL_ONLY, *LADDER[: LADDER.index(role)]]


def _admitted(role: str) -> list[str]:
    if role == ANY_TOKEN:
        return [APPROVAL_ONLY, *LADDER]
    return LADDER[LADDER.index(role):]


def _call(client: FlaskClient, method: str, path: str, headers: Headers,
          body: dict[str, Any] | None) -> int:
    return client.open(path, method=method, headers=headers, json=body).status_code


@pytest.mark.parametrize(("method", "path", "least", "body"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_roles_below_the_minimum_are_refused(client: FlaskClient,
                                             token_for: Callable[..., Headers], method: str,
                                             path: str, least: str,
                                             body: dict[str, Any] | None) -> None:
    for role in _below(least):
        assert _call(client, method, path, token_for(role), body) == 403, role


@pytest.mark.parametrize(("method", "path", "least", "body"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_the_minimum_role_is_admitted(client: FlaskClient, token_for: Callable[..., Headers],
                                      method: str, path: str, least: str,
                                      body: dict[str, Any] | None) -> None:
    for role in _admitted(least):
        assert _call(client, method, path, token_for(role), body) not in (401, 403), role


@pytest.mark.parametrize(("method", "path", "least", "body"), ENDPOINTS,
                         ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_no_token_is_401(client: FlaskClient, method: str, path: str, least: str,
                         body: dict[str, Any] | None) -> None:
    assert _call(client, method, path, {}, body) == 401


def test_every_mutating_route_is_in_the_matrix(client: FlaskClient) -> None:
    from api.auth import PUBLIC_PREFIXES

    listed = {(method, _pattern(path)) for method, path, _, _ in ENDPOINTS}
    app = client.application
    missing = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule.startswith(PUBLIC_PREFIXES):
            continue
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS", "GET"}:
            if (method, _pattern(rule.rule)) not in listed:
                missing.append(f"{method} {rule.rule}")
    assert sorted(missing) == []


def _pattern(path: str) -> str:
    """Path with every variable part replaced by `*` (rule or concrete path alike)."""
    import re

    parts = []
    for part in path.split("?")[0].split("/"):
        is_variable = part.startswith("<") or re.fullmatch(r"[0-9a-f-]{36}", part)
        parts.append("*" if is_variable else part)
    return "/".join(parts)
