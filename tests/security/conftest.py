"""Fixtures for the security tests: an API app with secret keys, tokens per role.

Like tests/api, every commit lands in a savepoint of a per-test transaction that is rolled
back, so audit rows and secrets written by one test never leak into another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.auth import issue_token
from models.settings import Settings

Headers = dict[str, str]


@pytest.fixture(scope="session")
def secret_key() -> str:
    return Fernet.generate_key().decode()


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
    return sessionmaker(bind=api_connection, join_transaction_mode="create_savepoint",
                        expire_on_commit=False)


@pytest.fixture
def app_settings(settings: Settings, secret_key: str) -> Settings:
    return settings.replace(secret_keys=(secret_key,))


@pytest.fixture
def app(app_settings: Settings, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(app_settings, session_factory=session_factory)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def token_for(session_factory: sessionmaker[Session]) -> Callable[..., Headers]:
    def make(*roles: str, name: str | None = None) -> Headers:
        with session_factory() as session:
            _row, token = issue_token(session, name=name or f"sec-{'-'.join(roles)}",
                                      roles=list(roles))
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make
