"""Database engine and session factory built from settings; no global engine."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from models.settings import Settings

# What a query function runs on: a session's transaction, or a plain (autocommit) connection.
Executor = Session | Connection


def sqlalchemy_url(database_url: str) -> str:
    """Map a plain postgresql:// URL to the psycopg 3 driver SQLAlchemy should use."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg{sep}{rest}"
    return database_url


# A pooled connection idle longer than this is pinged before use. Pinging every checkout
# (pool_pre_ping) cost a round trip per transaction, several per step; a connection used a
# moment ago is alive, or its failure is reported like any other database error.
IDLE_PING_SECONDS = 1.0


def make_engine(settings: Settings, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    engine = create_engine(
        sqlalchemy_url(settings.require_database_url()),
        pool_size=pool_size,
        max_overflow=max_overflow,
        future=True,
    )
    _ping_idle_connections(engine)
    return engine


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return  # new, or used a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError(str(error)) from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def autocommit(engine: Engine) -> Iterator[Connection]:
    """A pooled connection where each statement commits on its own: one round trip each.

    For single-statement work (a fenced claim, a read) that needs no BEGIN and COMMIT.
    """
    with autocommit_connection(engine) as connection:
        yield connection


def autocommit_connection(engine: Engine) -> Connection:
    """`autocommit`'s connection, for a caller that returns it to the pool (`close()`)
    itself."""
    return engine.connect().execution_options(isolation_level="AUTOCOMMIT")


class HeldAutocommit:
    """`autocommit`'s connection, kept by each thread between uses instead of going back to
    the pool after each.

    A step is a few short units of work (read or claim; complete and plan), each on an
    autocommit connection. Taking one from the pool and giving it back (SQLAlchemy's
    checkout, the switch to autocommit and back, the reset on return) cost ~100 µs per
    step, a seventh of a noop step's CPU in its worker. For processes that run steps one
    after another, one per thread.

    One unused for `IDLE_PING_SECONDS` is pinged before its next use, as the pool pings
    its own (`make_engine`). A use that raises, or leaves a transaction open, gives it back
    to the pool, whose reset on return leaves nothing of that use to the next. A thread
    keeps its connection until then, or until the process ends: for threads that run work
    until their process ends.
    In a forked child, the parent's connection is left alone (as
    `Engine.dispose(close=False)` leaves the pool's): never used, closed or collected there.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._local = threading.local()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        connection = self._take()
        try:
            yield connection
        except BaseException:
            connection.close()
            raise
        if _server_in_transaction(connection):
            connection.close()  # a use left one open: the pool's reset rolls it back
            return
        if connection.in_transaction():
            # SQLAlchemy begins a transaction object on a connection's first statement,
            # autocommit or not; the next use's begin() would refuse it. On the server
            # there is none to end: rolling back sends nothing.
            connection.rollback()
        nested = getattr(self._local, "held", None)
        if nested is not None:  # a use within this one held a second connection: let it go
            nested[0].close()
        self._local.held = (connection, os.getpid(), time.monotonic())

    def _take(self) -> Connection:
        held: tuple[Connection, int, float] | None = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            connection, pid, used_at = held
            if pid != os.getpid():
                _INHERITED.append(connection)
            elif self._usable(connection, used_at):
                return connection
        return autocommit_connection(self._engine)

    def _usable(self, connection: Connection, used_at: float) -> bool:
        """Whether this thread's held connection can serve the next use; one that cannot
        is closed here (a dead one invalidated first, so the pool discards it)."""
        if connection.invalidated or connection.closed:
            connection.close()
            return False
        if time.monotonic() - used_at >= IDLE_PING_SECONDS and not self._alive(connection):
            connection.invalidate()
            connection.close()
            return False
        return True

    def _alive(self, connection: Connection) -> bool:
        dbapi_connection = connection.connection.dbapi_connection
        if dbapi_connection is None:
            return False
        try:
            self._engine.dialect.do_ping(dbapi_connection)
        except self._engine.dialect.loaded_dbapi.Error:
            return False
        return True


def _server_in_transaction(connection: Connection) -> bool:
    driver = connection.connection.driver_connection
    return (isinstance(driver, psycopg.Connection)
            and driver.info.transaction_status != TransactionStatus.IDLE)


# Connections a forked process inherited from its parent's threads: the parent still uses
# them, so the child must never close one, nor let one be collected (which would).
_INHERITED: list[Connection] = []
