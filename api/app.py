"""The Flask app factory: wires settings, database, auth, audit, errors and every blueprint.

Owns: `create_app` and the list of API blueprints. Must not read the environment or open
connections at import time; everything comes from the `settings` argument.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Flask
from flask_smorest import Api
from sqlalchemy.orm import Session, sessionmaker

from api.audit import init_audit
from api.auth import init_auth
from api.blueprint import Blueprint as ApiBlueprint
from api.context import AppState, install_state
from api.errors import ErrorEnvelopeSchema, register_error_handlers
from api.metrics import init_metrics
from api.ratelimit import init_rate_limits
from api.security_headers import init_security_headers
from api.stream_slots import init_stream_slots
from engine.nodetypes import BUILTIN_NODE_TYPES, NodeType
from models.settings import Settings


class FlowyardApi(Api):  # type: ignore[misc]
    # Documents every error response with our envelope instead of flask-smorest's.
    ERROR_SCHEMA = ErrorEnvelopeSchema


def api_blueprints() -> list[ApiBlueprint]:
    """Every /api blueprint (flask-smorest, in OpenAPI). Add yours here with one line."""
    from api.resources import (
        approvals,
        audit_log,
        events,
        hooks,
        instances,
        notifications,
        secrets,
        templates,
        tokens,
        triggers,
        workflows,
    )

    return [
        workflows.blp,
        tokens.blp,
        triggers.blp,
        hooks.blp,
        events.blp,
        templates.blp,
        secrets.blp,
        audit_log.blp,
        approvals.blp,
        notifications.blp,
        instances.blp,
    ]


def plain_blueprints() -> list[Blueprint]:
    """Routes outside the OpenAPI description: probes and the docs page."""
    from api import metrics
    from api.resources import docs, health

    return [health.blp, docs.blp, metrics.blp]


def _api_config(settings: Settings) -> dict[str, Any]:
    return {
        "API_TITLE": "Flowyard",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "security": [{"bearerAuth": []}],
            "components": {
                "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            },
        },
        "MAX_CONTENT_LENGTH": settings.max_request_bytes,
        # Keep workflow_data keys in the order the client sent them.
        "JSON_SORT_KEYS": False,
    }


def default_node_types() -> dict[str, NodeType]:
    """The node types definitions are validated against: built-in specs and installed plug-ins.

    Raises:
        PluginError: an installed `flowyard.nodes` entry point is broken (named).
    """
    from worker.gateway import load_node_types

    return {**BUILTIN_NODE_TYPES, **load_node_types()}


def create_app(settings: Settings, *, session_factory: sessionmaker[Session] | None = None,
               celery_app: Any | None = None,
               node_types: Mapping[str, NodeType] | None = None,
               metrics_dir: str | None = None, event_streams: int | None = None) -> Flask:
    """Build the API app.

    `session_factory` defaults to one on a new engine for `settings.database_url`;
    `celery_app` is what endpoints that start work dispatch through (None: no dispatch);
    `node_types` defaults to `default_node_types()`; `metrics_dir` is the directory of
    prometheus-client's multiprocess mode, when several processes serve this app
    (`api.http_metrics`); `event_streams` caps the live event streams open at once (None:
    uncapped, for an app no threaded server serves; `api.stream_slots`).
    """
    if session_factory is None:
        from models.db import make_engine, make_session_factory

        session_factory = make_session_factory(make_engine(settings))
    app = Flask("flowyard", static_folder=None)
    app.config.update(_api_config(settings))
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install_state(app, AppState(settings=settings, session_factory=session_factory,
                                celery_app=celery_app,
                                node_types=dict(node_types or default_node_types())))
    api = FlowyardApi(app)
    for blueprint in api_blueprints():
        api.register_blueprint(blueprint)
    for plain in plain_blueprints():
        app.register_blueprint(plain)
    init_auth(app)
    init_audit(app)
    init_rate_limits(app, settings.redis_url, settings.rate_limit_per_minute)
    init_security_headers(app)
    init_stream_slots(app, event_streams)
    register_error_handlers(app)
    init_metrics(app, session_factory, settings.max_concurrent_workflows, metrics_dir)
    return app
