"""Fixtures for notification tests: a committing session factory on the session database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.db import make_session_factory


@pytest.fixture
def session_factory(db_engine) -> Iterator[sessionmaker[Session]]:  # type: ignore[no-untyped-def]
    """Sessions that really commit (the sender's transactions must be visible to others)."""
    yield make_session_factory(db_engine)
