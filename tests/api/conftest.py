"""API test fixtures: an app whose every commit stays inside a per-test rolled-back transaction.

`app`/`client` run the real app against the session's PostgreSQL database (schema from
`alembic upgrade head`); everything a test writes, audit rows included, is rolled back after
it. `token_for(*roles)` issues a real token and returns its Authorization header.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.auth import issue_token
from models.settings import Settings

Headers = dict[str, str]


@pytest.fixture
def api_connection(db_engine: Engine) -> Iterator[Connection]:
    connection = db_engine.connect()
    outer = connection.begin()
    try:
        yield connection
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def session_factory(api_connection: Connection) -> sessionmaker[Session]:
    # Sessions commit into savepoints of the test's transaction, so nothing outlives the test.
    return sessionmaker(bind=api_connection, join_transaction_mode="create_savepoint",
                        expire_on_commit=False)


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(settings, session_factory=session_factory)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token_for(session_factory: sessionmaker[Session]) -> Callable[..., Headers]:
    def make(*roles: str, name: str | None = None) -> Headers:
        with session_factory() as session:
            row, token = issue_token(session, name=name or f"test-{'-'.join(roles)}",
                                     roles=list(roles))
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make


@pytest.fixture
def admin(token_for: Callable[..., Headers]) -> Headers:
    return token_for("admin", name="alice-admin")


@pytest.fixture
def editor(token_for: Callable[..., Headers]) -> Headers:
    return token_for("editor", name="eddie-editor")


@pytest.fixture
def operator(token_for: Callable[..., Headers]) -> Headers:
    return token_for("operator", name="olga-operator")


@pytest.fixture
def viewer(token_for: Callable[..., Headers]) -> Headers:
    return token_for("viewer", name="victor-viewer")
