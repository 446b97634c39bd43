"""Fixtures for the security tests: the API fixtures of tests/api with secret keys configured.

Like tests/api, every commit lands in a savepoint of a per-test transaction that is rolled
back, so audit rows and secrets written by one test never leak into another.
"""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from models.settings import Settings
from tests.api.conftest import api_connection, client, session_factory, token_for

__all__ = ["api_connection", "client", "session_factory", "token_for"]


@pytest.fixture
def app_settings(settings: Settings, secret_key: str) -> Settings:
    return settings.replace(secret_keys=(secret_key,))


@pytest.fixture
def app(app_settings: Settings, session_factory: sessionmaker[Session]) -> Flask:
    return create_app(app_settings, session_factory=session_factory)
