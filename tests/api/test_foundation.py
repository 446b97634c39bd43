"""The API foundation: error envelope, authentication, audit rows, probes and the docs."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.security import AuditLogEntry

Headers = dict[str, str]


def _assert_envelope(body: object, code: str) -> None:
    assert isinstance(body, dict)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code


def _audit_rows(factory: sessionmaker[Session]) -> list[AuditLogEntry]:
    with factory() as session:
        return list(session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)))


def test_no_token_is_401_with_envelope(client: FlaskClient) -> None:
    response = client.get("/api/tokens")
    assert response.status_code == 401
    _assert_envelope(response.json, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_bad_token_is_401(client: FlaskClient) -> None:
    response = client.get("/api/tokens", headers={"Authorization": "Bearer not-a-token"})
    assert response.status_code == 401
    _assert_envelope(response.json, "unauthorized")


def test_non_bearer_scheme_is_401(client: FlaskClient) -> None:
    response = client.get("/api/tokens", headers={"Authorization": "Basic YWxpY2U6cHc="})
    assert response.status_code == 401


def test_revoked_token_is_401(client: FlaskClient, admin: Headers,
                              token_for: Callable[..., Headers]) -> None:
    created = client.post("/api/tokens", json={"name": "short-lived", "roles": ["viewer"]},
                          headers=admin)
    assert created.status_code == 201
    headers = {"Authorization": f"Bearer {created.json['token']}"}
    assert client.get("/api/tokens", headers=headers).status_code == 403  # valid, not admin
    assert client.delete(f"/api/tokens/{created.json['id']}", headers=admin).status_code == 204
    response = client.get("/api/tokens", headers=headers)
    assert response.status_code == 401
    _assert_envelope(response.json, "unauthorized")


def test_unknown_api_path_is_404_envelope(client: FlaskClient, viewer: Headers) -> None:
    response = client.get("/api/no-such-thing", headers=viewer)
    assert response.status_code == 404
    _assert_envelope(response.json, "not_found")


def test_wrong_method_is_405_envelope(client: FlaskClient, admin: Headers) -> None:
    response = client.patch("/api/tokens", json={}, headers=admin)
    assert response.status_code == 405
    _assert_envelope(response.json, "method_not_allowed")


def test_malformed_json_is_400(client: FlaskClient, admin: Headers) -> None:
    response = client.post("/api/tokens", data=b'{"name": "x", "roles": [',
                           headers={**admin, "Content-Type": "application/json"})
    assert response.status_code == 400
    _assert_envelope(response.json, "bad_request")


def test_unknown_field_is_422_naming_it(client: FlaskClient, admin: Headers) -> None:
    response = client.post("/api/tokens", json={"name": "x", "roles": ["viewer"], "colour": 1},
                           headers=admin)
    assert response.status_code == 422
    _assert_envelope(response.json, "validation_error")
    assert "colour" in response.json["error"]["details"]["fields"]


def test_unknown_query_parameter_is_422(client: FlaskClient, admin: Headers) -> None:
    response = client.get("/api/tokens?colour=blue", headers=admin)
    assert response.status_code == 422
    assert "colour" in response.json["error"]["details"]["fields"]


def test_body_over_the_cap_is_413(settings: object, session_factory: sessionmaker[Session],
                                  admin: Headers) -> None:
    from api.app import create_app
    from models.settings import Settings

    assert isinstance(settings, Settings)
    small = create_app(settings.replace(max_request_bytes=1024), session_factory=session_factory)
    response = small.test_client().post(
        "/api/tokens", json={"name": "x" * 2000, "roles": ["viewer"]}, headers=admin)
    assert response.status_code == 413
    _assert_envelope(response.json, "payload_too_large")


def test_server_error_shows_no_trace(app: Flask, admin: Headers) -> None:
    from api.auth import require_role

    @require_role("viewer")
    def explode() -> str:
        raise RuntimeError("SELECT secret FROM internals -- boom")

    app.add_url_rule("/api/explode", "explode", explode)
    response = app.test_client().get("/api/explode", headers=admin)
    assert response.status_code == 500
    _assert_envelope(response.json, "internal_error")
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "SELECT" not in text and "boom" not in text


def test_endpoint_without_declared_role_is_closed(app: Flask, admin: Headers) -> None:
    app.add_url_rule("/api/undeclared", "undeclared", lambda: "open")
    response = app.test_client().get("/api/undeclared", headers=admin)
    assert response.status_code == 403


def test_every_api_route_declares_a_role(app: Flask) -> None:
    from api.auth import PUBLIC_PREFIXES

    undeclared = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/") or rule.rule.startswith(PUBLIC_PREFIXES):
            continue
        view = app.view_functions[rule.endpoint]
        view_class = getattr(view, "view_class", None)
        for method in rule.methods or ():
            if method in ("HEAD", "OPTIONS"):
                continue
            handler = getattr(view_class, method.lower(), None) if view_class else view
            if getattr(handler, "_flowyard_required_role", None) is None:
                undeclared.append(f"{method} {rule.rule}")
    assert undeclared == []


def test_mutating_calls_write_audit_rows(client: FlaskClient, admin: Headers,
                                         viewer: Headers,
                                         session_factory: sessionmaker[Session]) -> None:
    before = len(_audit_rows(session_factory))
    created = client.post("/api/tokens", json={"name": "ci", "roles": ["operator"]},
                          headers={**admin, "X-Request-ID": "req-123"})
    denied = client.post("/api/tokens", json={"name": "nope", "roles": ["admin"]},
                         headers=viewer)
    anonymous = client.delete(f"/api/tokens/{created.json['id']}")
    client.get("/api/tokens", headers=admin)  # reads are not audited
    rows = _audit_rows(session_factory)[before:]
    assert [(r.actor, r.outcome, r.status_code) for r in rows] == [
        ("alice-admin", "success", 201),
        ("victor-viewer", "denied", 403),
        (None, "denied", 401),
    ]
    assert denied.status_code == 403 and anonymous.status_code == 401
    assert rows[0].action == "POST /api/tokens"
    assert (rows[0].resource_type, rows[0].resource_id) == ("tokens", created.json["id"])
    assert rows[0].request_id == "req-123"
    assert rows[0].client_address == "127.0.0.1"
    assert rows[2].resource_id == created.json["id"]
    assert created.json["token"] not in str(rows[0].details)


def test_audit_row_survives_a_failed_request(client: FlaskClient, admin: Headers,
                                             session_factory: sessionmaker[Session]) -> None:
    before = len(_audit_rows(session_factory))
    response = client.delete("/api/tokens/00000000-0000-0000-0000-000000000000",
                             headers=admin)
    assert response.status_code == 404
    rows = _audit_rows(session_factory)[before:]
    assert [(r.outcome, r.status_code) for r in rows] == [("failure", 404)]


def test_healthz_is_alive_without_auth(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_database_and_broker(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_names_the_unreachable_broker(settings: object,
                                             session_factory: sessionmaker[Session]) -> None:
    from api.app import create_app
    from models.settings import Settings

    assert isinstance(settings, Settings)
    # Port 9 on loopback (discard) has no Redis: the connection is refused at once.
    broken = settings.replace(redis_url="redis://127.0.0.1:9/0", broker_url=None)
    response = create_app(broken, session_factory=session_factory).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["broker"]
    assert response.json["checks"]["database"] == "ok"


def test_readyz_names_the_unreachable_database(settings: object) -> None:
    from api.app import create_app
    from models.settings import Settings

    assert isinstance(settings, Settings)
    broken = settings.replace(database_url="postgresql://postgres@127.0.0.1:9/none")
    response = create_app(broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["failed"] == ["database"]


def test_openapi_and_docs_are_served_locally(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json")
    assert spec.status_code == 200
    assert spec.json["openapi"].startswith("3.")
    assert "/api/tokens" in spec.json["paths"]
    assert "bearerAuth" in spec.json["components"]["securitySchemes"]
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/openapi.json" in html
    assert "http://" not in html and "https://" not in html  # no CDN
