"""Liveness and readiness probes (/healthz, /readyz); outside /api and without auth.

Must not do work beyond a trivial database query and a broker connection check.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint
from sqlalchemy import text

from api.context import app_state

logger = logging.getLogger(__name__)

blp = Blueprint("health", __name__)

_BROKER_TIMEOUT_SECONDS = 2.0


def _database_ok() -> bool:
    try:
        with app_state().session_factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness: database unreachable", exc_info=True)
        return False


def _broker_ok() -> bool:
    from kombu import Connection  # local: only the readiness probe needs it

    url = app_state().settings.celery_broker_url
    if not url:
        return False
    try:
        with Connection(url, connect_timeout=_BROKER_TIMEOUT_SECONDS,
                        transport_options={"socket_timeout": _BROKER_TIMEOUT_SECONDS}) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # any failure means "not ready"; the reason goes to the log
        logger.warning("readiness: broker unreachable", exc_info=True)
        return False


@blp.get("/healthz")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@blp.get("/readyz")
def readyz() -> tuple[dict[str, Any], int]:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    failed = [name for name, ok in checks.items() if not ok]
    body: dict[str, Any] = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: "ok" if ok else "unreachable" for name, ok in checks.items()},
    }
    if failed:
        body["failed"] = failed
    return body, 503 if failed else 200
