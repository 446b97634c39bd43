"""Template tests reuse the API fixtures (app on a rolled-back connection, tokens per role)."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from models.settings import Settings
from tests.api.conftest import (  # noqa: F401
    admin,
    api_connection,
    client,
    editor,
    operator,
    session_factory,
    token_for,
    viewer,
)

# Real worker and scheduler processes for the tests that run templates.
from tests.e2e.conftest import cluster, e2e_settings, runtime  # noqa: E402, F401


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session],  # noqa: F811
        secret_key: str) -> Flask:
    """The API with a secret key configured (webhook secrets are stored encrypted)."""
    return create_app(settings.replace(secret_keys=(secret_key,)),
                      session_factory=session_factory)
