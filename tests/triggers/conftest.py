"""Fixtures for trigger tests: a session factory on the session database and workflow rows."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from models.db import make_session_factory, transaction
from models.settings import Settings
from models.workflow import Workflow

SIMPLE_DOCUMENT: dict[str, Any] = {
    "nodes": [{"id": "start", "type": "trigger", "position": {"x": 0, "y": 0},
               "data": {"label": "Start"}}],
    "edges": [],
}


@pytest.fixture
def factory(db_engine) -> sessionmaker[Session]:  # type: ignore[no-untyped-def]
    return make_session_factory(db_engine)


@pytest.fixture
def make_workflow(factory: sessionmaker[Session]) -> Iterator[Callable[..., uuid.UUID]]:
    """Create committed workflow rows; they (and their triggers) are deleted after the test."""
    created: list[uuid.UUID] = []

    def make(*, is_active: bool = True, name: str = "trigger test") -> uuid.UUID:
        with transaction(factory) as session:
            workflow = Workflow(name=name, workflow_data=SIMPLE_DOCUMENT, is_active=is_active)
            session.add(workflow)
            session.flush()
            created.append(workflow.id)
            return workflow.id

    yield make
    with transaction(factory) as session:
        session.execute(delete(Workflow).where(Workflow.id.in_(created)))


# The API fixtures (app on a rolled-back connection, tokens per role) are shared with tests/api.
from tests.api.conftest import (  # noqa: E402, F401
    admin,
    api_connection,
    client,
    editor,
    operator,
    session_factory,
    token_for,
    viewer,
)


@pytest.fixture
def api_workflow(session_factory: sessionmaker[Session]) -> Callable[..., uuid.UUID]:  # noqa: F811
    """Create a workflow row inside the API test's rolled-back transaction."""

    def make(*, is_active: bool = True, name: str = "api trigger test") -> uuid.UUID:
        with session_factory() as session:
            workflow = Workflow(name=name, workflow_data=SIMPLE_DOCUMENT, is_active=is_active)
            session.add(workflow)
            session.commit()
            return workflow.id

    return make


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session],  # noqa: F811
        secret_key: str) -> Flask:
    """The API with a secret key configured (webhook secrets are stored encrypted)."""
    return create_app(settings.replace(secret_keys=(secret_key,)),
                      session_factory=session_factory)
