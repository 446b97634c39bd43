"""Per-app collaborators (settings, session factory, Celery app) and the request-scoped session.

Owns: `AppState` (stored in `app.extensions["flowyard"]`), `app_state()`, `worker_runtime()`,
`request_session()` and `request_connection()`. The request session is opened lazily, never
committed here (endpoints commit explicitly), and closed after every request, which rolls
back anything uncommitted. The request connection is taken lazily too: the serving
thread's held one (`models.db.HeldAutocommit`), kept by the thread after the request, or
given back to the pool if the request failed.
Must not hold module-level engines or sessions.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from engine.nodetypes import NodeType
from models.db import HeldAutocommit
from models.settings import Settings
from worker.gateway import WorkerRuntime

_EXTENSION_KEY = "flowyard"
_RUNTIME_KEY = "flowyard.worker_runtime"
_HELD_KEY = "flowyard.held_connections"


@dataclass(frozen=True)
class AppState:
    settings: Settings
    session_factory: sessionmaker[Session]
    # The Celery app used to dispatch work; None in an API built without one (tests of the
    # definition endpoints need no broker).
    celery_app: Any | None = None
    # Node types by name (built-ins and plug-ins), used to validate definitions.
    node_types: Mapping[str, NodeType] = field(default_factory=dict)


def install_state(app: Flask, state: AppState) -> None:
    app.extensions[_EXTENSION_KEY] = state
    app.teardown_appcontext(_teardown_session)


def app_state() -> AppState:
    state: AppState = current_app.extensions[_EXTENSION_KEY]
    return state


def request_session() -> Session:
    """The database session of the current request (created on first use).

    Endpoints do their reads and writes on it and call `commit()` themselves once the work is
    complete; whatever is not committed when the request ends is rolled back.
    """
    session: Session | None = g.get("db_session")
    if session is None:
        session = app_state().session_factory()
        g.db_session = session
    return session


def close_request_session() -> None:
    """Close (and so roll back the uncommitted part of) the request session, if one was opened."""
    session: Session | None = g.pop("db_session", None)
    if session is not None:
        session.close()


def request_connection() -> Connection | None:
    """The request's autocommit connection (`models.db.autocommit`), checked out on first use.

    For plain SQL that commits as it goes: each statement on its own, or a transaction
    sent whole in one round trip (`models.driver_sql.fetch_in_transaction`). The audit
    row, the execute fast path and a mutating call's token lookup share it, so such work
    takes one connection from the pool, and no BEGIN or ROLLBACK round trips.

    None when the app's sessions are bound to one connection, not an engine: an outer
    transaction owns it (the API tests'), and nothing may commit outside that. Callers
    then use the request session.
    """
    if "db_connection" not in g:
        held = _held_connections()
        taken: AbstractContextManager[Connection] | None = (
            held.connection() if held is not None else None)
        g.db_connection = taken.__enter__() if taken is not None else None
        g.db_connection_taken = taken
    connection: Connection | None = g.db_connection
    return connection


def _held_connections() -> HeldAutocommit | None:
    """The app's serving threads' held autocommit connections; None when its sessions are
    bound to a connection, not an engine (see `request_connection`)."""
    held: HeldAutocommit | None = current_app.extensions.get(_HELD_KEY)
    if held is None:
        bind = app_state().session_factory.kw.get("bind")
        if not isinstance(bind, Engine):
            return None
        held = current_app.extensions.setdefault(_HELD_KEY, HeldAutocommit(bind))
    return held


def _teardown_session(error: BaseException | None) -> None:
    close_request_session()
    g.pop("db_connection", None)
    taken: AbstractContextManager[Connection] | None = g.pop("db_connection_taken", None)
    if taken is not None:
        # A failed request gives it back to the pool, which resets it.
        taken.__exit__(type(error) if error else None, error, None)


def worker_runtime() -> WorkerRuntime:
    """The worker-side collaborators on the API's own database pool and Celery app (one per app).

    The API uses it to dispatch, admit and resume work after its own commits.
    """
    runtime: WorkerRuntime | None = current_app.extensions.get(_RUNTIME_KEY)
    if runtime is None:
        state = app_state()
        factory = state.session_factory
        # The API's own engine (or a test's connection): the runtime only uses its sessions.
        runtime = WorkerRuntime(settings=state.settings, node_types=dict(state.node_types),
                                engine=factory.kw.get("bind"), session_factory=factory,
                                celery=state.celery_app, held=_held_connections())
        current_app.extensions[_RUNTIME_KEY] = runtime
    return runtime
