"""The app `flowyard api` builds in each gunicorn process: its pool fits its threads."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from api.commands.serve import _gunicorn_application, gunicorn_options
from api.stream_slots import StreamSlots
from models.settings import Settings


@pytest.mark.parametrize(("threads", "pool_size", "max_overflow"), [(4, 5, 10), (16, 16, 16)])
def test_each_thread_may_hold_a_connection_and_a_session_at_once(
        settings: Settings, threads: int, pool_size: int, max_overflow: int) -> None:
    options = gunicorn_options("127.0.0.1", 8000, 2, threads, 60)
    app = _gunicorn_application(settings, options, None, event_streams=3).load()
    engine = app.extensions["flowyard"].session_factory.kw["bind"]
    assert isinstance(engine, Engine)
    assert (engine.pool.size(), engine.pool._max_overflow) == (pool_size, max_overflow)
    assert engine.pool.size() + engine.pool._max_overflow >= 2 * threads
    slots = app.extensions["flowyard.stream_slots"]
    assert isinstance(slots, StreamSlots) and slots.limit == 3
    engine.dispose()
