"""The request connection: the serving thread's held one, kept between requests and given
back to the pool after a request that failed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import text

from api.app import create_app
from api.context import request_connection
from models.db import make_engine, make_session_factory


@pytest.fixture
def served(settings: Any) -> Iterator[tuple[Any, Any]]:
    engine = make_engine(settings, pool_size=2, max_overflow=0)
    try:
        yield create_app(settings, session_factory=make_session_factory(engine)), engine
    finally:
        engine.dispose()


def _backend_in_a_request(app: Any) -> int:
    with app.test_request_context("/api/workflows", method="POST"):
        connection = request_connection()
        assert connection is not None
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_serving_thread_keeps_its_connection_between_requests(served: Any) -> None:
    app, engine = served
    first = _backend_in_a_request(app)
    assert engine.pool.checkedout() == 1  # kept by this thread, not in the pool
    assert _backend_in_a_request(app) == first
    assert engine.pool.checkedout() == 1


def test_a_request_that_failed_gives_it_back(served: Any) -> None:
    app, engine = served
    _backend_in_a_request(app)
    with pytest.raises(RuntimeError), app.test_request_context("/api/workflows",
                                                               method="POST"):
        assert request_connection() is not None
        raise RuntimeError("the request failed")
    assert engine.pool.checkedout() == 0
    assert _backend_in_a_request(app) > 0
