"""/api/tokens: tokens are random, shown once, stored hashed, revocable; roles follow the ladder."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from models.security import ApiToken

Headers = dict[str, str]


def test_create_shows_the_token_once(client: FlaskClient, admin: Headers,
                                     session_factory: sessionmaker[Session]) -> None:
    response = client.post("/api/tokens", json={"name": "ci-bot", "roles": ["operator"]},
                           headers=admin)
    assert response.status_code == 201
    body = response.json
    assert {"id", "name", "roles", "token"} <= set(body)
    assert (body["name"], body["roles"]) == ("ci-bot", ["operator"])
    token = body["token"]
    listed = client.get("/api/tokens", headers=admin).json
    assert listed["items"][0]["id"] == body["id"]  # newest first
    assert all("token" not in item and "token_hash" not in item for item in listed["items"])
    assert token not in client.get("/api/tokens", headers=admin).get_data(as_text=True)
    with session_factory() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == "ci-bot")).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.created_by == "alice-admin"


def test_tokens_are_random(client: FlaskClient, admin: Headers) -> None:
    tokens = {client.post("/api/tokens", json={"name": "t", "roles": ["viewer"]},
                          headers=admin).json["token"] for _ in range(3)}
    assert len(tokens) == 3
    assert all(len(token) >= 40 for token in tokens)


def test_new_token_works_with_its_roles(client: FlaskClient, admin: Headers) -> None:
    created = client.post("/api/tokens", json={"name": "reader", "roles": ["viewer"]},
                          headers=admin).json
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/workflows", headers=headers).status_code == 200
    assert client.post("/api/workflows", json={}, headers=headers).status_code == 403


def test_revoke_stops_the_token_and_is_idempotent(client: FlaskClient, admin: Headers) -> None:
    created = client.post("/api/tokens", json={"name": "temp", "roles": ["admin"]},
                          headers=admin).json
    headers = {"Authorization": f"Bearer {created['token']}"}
    assert client.get("/api/tokens", headers=headers).status_code == 200
    assert client.delete(f"/api/tokens/{created['id']}", headers=admin).status_code == 204
    assert client.get("/api/tokens", headers=headers).status_code == 401
    assert client.delete(f"/api/tokens/{created['id']}", headers=admin).status_code == 204
    listed = client.get("/api/tokens", headers=admin).json["items"]
    revoked = next(item for item in listed if item["id"] == created["id"])
    assert revoked["revoked_at"].endswith("Z")


def test_invalid_token_bodies_are_422(client: FlaskClient, admin: Headers) -> None:
    for body in ({"name": "x", "roles": []}, {"name": "", "roles": ["viewer"]},
                 {"name": "x", "roles": ["has space"]}, {"roles": ["viewer"]},
                 {"name": "x", "roles": "viewer"}):
        response = client.post("/api/tokens", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.json["error"]["code"] == "validation_error"


def test_an_approval_role_alone_grants_no_reads(client: FlaskClient,
                                                token_for: Callable[..., Headers]) -> None:
    approver = token_for("security-lead")
    assert client.get("/api/workflows", headers=approver).status_code == 403
    both = token_for("viewer", "security-lead")
    assert client.get("/api/workflows", headers=both).status_code == 200


def test_role_ladder() -> None:
    from api.auth import Principal

    def principal(*roles: str) -> Principal:
        return Principal(token_id="t", name="n", roles=frozenset(roles))

    assert principal("operator").has_role("viewer")
    assert not principal("operator").has_role("editor")
    assert principal("admin").has_role("editor")
    assert principal("admin").has_role("security-lead")  # admin may decide any approval
    assert principal("security-lead").has_role("security-lead")
    assert not principal("editor").has_role("security-lead")
    assert not principal("security-lead").has_role("viewer")
    assert principal("security-lead").can_approve("security-lead")
    assert principal("admin").can_approve("anything")
    assert not principal("editor").can_approve("security-lead")


def test_last_used_at_is_recorded_at_most_once_a_minute(
        client: FlaskClient, admin: Headers, session_factory: sessionmaker[Session]) -> None:
    created = client.post("/api/tokens", json={"name": "user", "roles": ["viewer"]},
                          headers=admin).json
    assert created.get("last_used_at") is None
    headers = {"Authorization": f"Bearer {created['token']}"}

    def last_used() -> str | None:
        items = client.get("/api/tokens", headers=admin).json["items"]
        value: str | None = next(i for i in items if i["id"] == created["id"])["last_used_at"]
        return value

    def stored() -> Any:
        with session_factory() as session:
            return session.get(ApiToken, created["id"]).last_used_at

    assert client.get("/api/workflows", headers=headers).status_code == 200
    first = last_used()
    assert first is not None
    # A minute back: the next use records again; a use within the minute writes nothing.
    with session_factory() as session, session.begin():
        session.execute(update(ApiToken).where(ApiToken.id == created["id"]).values(
            last_used_at=func.now() - text("interval '61 seconds'")))
    older = stored()
    assert client.get("/api/workflows", headers=headers).status_code == 200
    assert stored() > older
    with session_factory() as session, session.begin():
        session.execute(update(ApiToken).where(ApiToken.id == created["id"]).values(
            last_used_at=func.now() - text("interval '30 seconds'")))
    recent = stored()
    assert client.get("/api/workflows", headers=headers).status_code == 200
    assert stored() == recent
    assert client.get("/api/nothing-here", headers=headers).status_code == 404
    assert stored() == recent
