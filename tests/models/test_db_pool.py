"""The engine's pool pings only idle connections, and replaces one the server has closed; a
thread's held autocommit connection (`HeldAutocommit`) is reused, pinged when idle, and let
go when a use fails."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import text
from sqlalchemy.exc import DataError

import models.db
from models.db import HeldAutocommit, make_engine


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


def _held_pid(held: HeldAutocommit) -> int:
    with held.connection() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def held_on_one(settings: Any) -> Any:
    """A held connection on a pool of one: a second checkout would wait, then fail."""
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    engine.pool._timeout = 2  # type: ignore[attr-defined]  # fail fast, not in 30 s
    try:
        yield engine, HeldAutocommit(engine)
    finally:
        engine.dispose()


def test_a_thread_keeps_its_connection_between_uses(held_on_one: Any) -> None:
    engine, held = held_on_one
    first = _held_pid(held)
    assert _held_pid(held) == first
    assert engine.pool.checkedout() == 1  # held, not back in the pool
    with held.connection() as connection:
        assert connection.connection.dbapi_connection.autocommit


def test_a_use_leaves_no_sqlalchemy_transaction_to_the_next(held_on_one: Any) -> None:
    _, held = held_on_one
    with held.connection() as connection:
        connection.execute(text("SELECT 1"))  # SQLAlchemy begins its transaction object
    with held.connection() as connection:
        assert not connection.in_transaction()
        with connection.begin():  # what explicit_transaction does first
            connection.execute(text("SELECT 1"))


def test_a_use_that_left_a_transaction_open_gives_the_connection_back(
        held_on_one: Any) -> None:
    engine, held = held_on_one
    with held.connection() as connection:
        connection.connection.driver_connection.execute("BEGIN")
    assert engine.pool.checkedout() == 0  # the pool's reset rolled it back
    with held.connection() as connection:
        status = connection.connection.driver_connection.info.transaction_status
        assert status == TransactionStatus.IDLE


def test_a_use_that_raises_gives_the_connection_back(held_on_one: Any) -> None:
    engine, held = held_on_one
    with pytest.raises(DataError), held.connection() as connection:
        connection.execute(text("SELECT 1 / 0"))
    assert engine.pool.checkedout() == 0
    assert _held_pid(held) > 0


def test_a_held_connection_idle_and_closed_by_the_server_is_replaced(
        held_on_one: Any, db_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _, held = held_on_one
    killed = _held_pid(held)
    _terminate(db_engine, killed)
    monkeypatch.setattr(models.db, "IDLE_PING_SECONDS", 0.0)  # count it as idle
    assert _held_pid(held) != killed


def test_each_thread_holds_its_own_and_a_nested_use_lets_its_second_go(
        settings: Any) -> None:
    engine = make_engine(settings, pool_size=3, max_overflow=0)
    held = HeldAutocommit(engine)
    try:
        mine = _held_pid(held)
        theirs: list[int] = []
        holding, done = threading.Event(), threading.Event()

        def other_thread() -> None:
            theirs.append(_held_pid(held))
            holding.set()
            done.wait(10)
        other = threading.Thread(target=other_thread)
        other.start()
        assert holding.wait(10)
        assert theirs[0] != mine and engine.pool.checkedout() == 2
        done.set()
        other.join()
        before = engine.pool.checkedout()
        with held.connection(), held.connection():
            assert engine.pool.checkedout() == before + 1
        assert engine.pool.checkedout() == before
    finally:
        engine.dispose()


def test_a_forked_child_leaves_its_parent_s_connection_alone(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(settings, pool_size=2, max_overflow=0)
    held = HeldAutocommit(engine)
    try:
        parents = _held_pid(held)
        monkeypatch.setattr(models.db.os, "getpid", lambda: -1)  # as if in a forked child
        assert _held_pid(held) != parents
        assert engine.pool.checkedout() == 2  # the parent's kept, never closed
        inherited = models.db._INHERITED.pop()
        assert inherited.connection.dbapi_connection.info.backend_pid == parents
        inherited.close()
    finally:
        engine.dispose()
