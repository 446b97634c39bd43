"""The engine's pool pings only idle connections, and replaces one the server has closed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import text

import models.db
from models.db import make_engine


def _backend_pid(engine: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _backend_alive(admin: Any, pid: int) -> bool:
    # pg_stat_activity is a per-transaction snapshot: clear it before each look.
    admin.execute(text("SELECT pg_stat_clear_snapshot()"))
    return bool(admin.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"),
                              {"pid": pid}).scalar_one())


def _terminate(admin_engine: Any, pid: int) -> None:
    """Close a backend from the server side and wait (with a deadline) until it is gone."""
    with admin_engine.connect() as admin:
        assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
        deadline = time.monotonic() + 10
        while _backend_alive(admin, pid):
            assert time.monotonic() < deadline, f"backend {pid} still alive"
            time.sleep(0.01)


def test_an_idle_connection_closed_by_the_server_is_replaced(
        settings: Any, db_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        killed = _backend_pid(engine)
        _terminate(db_engine, killed)
        monkeypatch.setattr(models.db, "IDLE_PING_SECONDS", 0.0)  # count it as idle
        assert _backend_pid(engine) != killed
    finally:
        engine.dispose()


def test_a_connection_used_a_moment_ago_is_reused_without_a_ping(
        settings: Any, db_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        killed = _backend_pid(engine)
        _terminate(db_engine, killed)
        monkeypatch.setattr(models.db, "IDLE_PING_SECONDS", 3600.0)  # never idle enough
        # No ping: the closed connection is handed out and its first statement fails.
        with pytest.raises(Exception, match="(?i)terminat|closed|connection"):
            _backend_pid(engine)
        assert _backend_pid(engine) != killed  # the pool dropped it after the failure
    finally:
        engine.dispose()
