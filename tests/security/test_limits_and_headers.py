"""Rate limits (429 with Retry-After, counted in Redis) and security headers on responses."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.test import TestResponse

from api.app import create_app
from api.auth import require_role
from api.ratelimit import WINDOW_SECONDS
from models.settings import Settings

Headers = dict[str, str]
LIMIT = 3


def _window() -> int:
    return int(time.time() // WINDOW_SECONDS)


def _limited_app(app_settings: Settings, factory: sessionmaker[Session]) -> Flask:
    app = create_app(app_settings.replace(rate_limit_per_minute=LIMIT), session_factory=factory)
    # The execute limit applies to every POST .../execute route; this stand-in route is
    # marked like a real endpoint, so the limiter sees exactly what it sees in production.
    probe = Blueprint("execute_probe", __name__)

    @probe.post("/api/probe-workflows/<int:item>/execute")
    @require_role("operator")
    def execute(item: int) -> tuple[dict[str, int], int]:
        return {"started": item}, 202

    app.register_blueprint(probe)
    return app


def _limited_client(app_settings: Settings, factory: sessionmaker[Session]) -> FlaskClient:
    """A client of a limited app with a client address of its own.

    Failed logins are counted per client address: other tests' 401s from 127.0.0.1 in the same
    minute would otherwise use up this app's tiny budget before the test starts.
    """
    client = _limited_app(app_settings, factory).test_client()
    client.environ_base["REMOTE_ADDR"] = "127.0.0.77"
    return client


def _calls_in_one_window(call: Callable[[], TestResponse], count: int) -> list[TestResponse]:
    """Make `count` calls inside one rate window (retrying if a window boundary interleaves)."""
    for _ in range(3):
        start = _window()
        responses = [call() for _ in range(count)]
        if _window() == start:
            return responses
    pytest.fail("could not fit the calls into one rate-limit window")


def test_execute_is_limited_per_token_with_retry_after(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    client = _limited_client(app_settings, session_factory)
    first, second = token_for("operator"), token_for("operator")

    def call_first() -> TestResponse:
        return client.post("/api/probe-workflows/1/execute", headers=first)

    responses = _calls_in_one_window(call_first, LIMIT + 1)
    assert [r.status_code for r in responses] == [202] * LIMIT + [429]
    refused = responses[LIMIT]
    assert 1 <= int(refused.headers["Retry-After"]) <= WINDOW_SECONDS
    assert refused.json["error"]["code"] == "rate_limited"
    # Another token has its own budget.
    assert client.post("/api/probe-workflows/1/execute", headers=second).status_code == 202


def test_auth_failures_are_limited_per_client(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    client = _limited_app(app_settings, session_factory).test_client()
    attacker = {"REMOTE_ADDR": "127.0.0.66"}
    bad = {"Authorization": "Bearer guessed-token"}

    def guess() -> TestResponse:
        return client.get("/api/secrets", headers=bad, environ_base=attacker)

    responses = _calls_in_one_window(guess, LIMIT + 1)
    assert [r.status_code for r in responses] == [401] * LIMIT + [429]
    assert int(responses[LIMIT].headers["Retry-After"]) >= 1
    # Even a valid token from that client waits out the window; other clients do not.
    good = token_for("editor")
    blocked = client.get("/api/secrets", headers=good, environ_base=attacker)
    if blocked.status_code == 429:
        assert int(blocked.headers["Retry-After"]) >= 1
    assert client.get("/api/secrets", headers=good,
                      environ_base={"REMOTE_ADDR": "127.0.0.67"}).status_code == 200


def test_rate_limits_are_shared_through_redis_across_app_instances(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    replicas = [_limited_client(app_settings, session_factory) for _ in range(2)]
    token = token_for("operator")
    calls = iter(range(LIMIT + 1))

    def call() -> TestResponse:
        replica = replicas[next(calls, 0) % 2]
        return replica.post("/api/probe-workflows/7/execute", headers=token)

    responses = _calls_in_one_window(call, LIMIT + 1)
    assert [r.status_code for r in responses] == [202] * LIMIT + [429]


@pytest.mark.parametrize("path", ["/api/secrets", "/api/nowhere", "/api/openapi.json"])
def test_api_responses_carry_security_headers(client: FlaskClient,
                                              token_for: Callable[..., Headers],
                                              path: str) -> None:
    response = client.get(path, headers=token_for("editor"))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_error_and_probe_responses_carry_headers_too(client: FlaskClient) -> None:
    unauthorized = client.get("/api/secrets")
    assert unauthorized.status_code == 401
    assert unauthorized.headers["X-Content-Type-Options"] == "nosniff"
    assert unauthorized.headers["Cache-Control"] == "no-store"
    health = client.get("/healthz")
    assert health.headers["X-Frame-Options"] == "DENY"
    docs = client.get("/api/docs")
    assert docs.status_code == 200
    assert "connect-src 'self'" in docs.headers["Content-Security-Policy"]


def test_request_body_over_the_cap_is_413_without_trace(
    client: FlaskClient, token_for: Callable[..., Headers], app_settings: Settings,
) -> None:
    big = "x" * (app_settings.max_request_bytes + 1)
    response = client.post("/api/secrets", headers=token_for("editor"),
                           data=f'{{"name": "B", "value": "{big}"}}',
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "payload_too_large"
    assert "Traceback" not in response.get_data(as_text=True)


def test_the_real_execute_endpoint_is_limited(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    client = create_app(app_settings.replace(rate_limit_per_minute=1),
                        session_factory=session_factory).test_client()
    operator = token_for("operator")
    missing = "00000000-0000-0000-0000-000000000000"

    def execute() -> TestResponse:
        # Its own client address: other tests' 401s from 127.0.0.1 count against that one.
        return client.post(f"/api/workflows/{missing}/execute", json={}, headers=operator,
                           environ_base={"REMOTE_ADDR": "127.0.0.81"})

    responses = _calls_in_one_window(execute, 2)
    assert [r.status_code for r in responses] == [404, 429]
    assert "Retry-After" in responses[1].headers


def test_webhook_and_event_starts_are_limited(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    client = create_app(app_settings.replace(rate_limit_per_minute=1),
                        session_factory=session_factory).test_client()
    # Its own client address: other tests' 401s from 127.0.0.1 count against that one.
    client.environ_base["REMOTE_ADDR"] = "127.0.0.82"
    editor = token_for("editor")
    document = {"name": "hooked", "workflow_data": {
        "nodes": [{"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
                   "data": {"label": "Start"}}], "edges": []}}
    workflow = client.post("/api/workflows", json=document, headers=editor)
    assert workflow.status_code == 201, workflow.json
    trigger = client.post(f"/api/workflows/{workflow.json['id']}/triggers", headers=editor,
                          json={"trigger_type": "webhook", "configuration": {}})
    assert trigger.status_code == 201, trigger.json
    def hook() -> TestResponse:
        return client.post(f"/api/hooks/{trigger.json['id']}", json={"n": 1})

    responses = _calls_in_one_window(hook, 2)
    assert responses[0].status_code < 400, responses[0].json
    assert responses[1].status_code == 429 and "Retry-After" in responses[1].headers

    def event() -> TestResponse:
        return client.post("/api/events", json={"source": "s", "type": "t", "payload": {}},
                           headers=editor)

    responses = _calls_in_one_window(event, 2)
    assert responses[0].status_code < 400, responses[0].json
    assert responses[1].status_code == 429


def test_an_unreachable_redis_never_blocks_requests(
    app_settings: Settings, session_factory: sessionmaker[Session],
    token_for: Callable[..., Headers],
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"redis://127.0.0.1:{probe.getsockname()[1]}/0"
    client = create_app(app_settings.replace(redis_url=dead, rate_limit_per_minute=1),
                        session_factory=session_factory).test_client()
    editor = token_for("editor")
    for _ in range(3):
        assert client.get("/api/secrets", headers=editor).status_code == 200
        assert client.get("/api/secrets", headers={"Authorization": "Bearer x"}).status_code == 401
