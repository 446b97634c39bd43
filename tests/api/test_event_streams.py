"""Live event streams: capped per app, each slot given back when its stream closes, and a
quiet stream writes a heartbeat (how a watcher that went away is noticed)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from api.app import create_app
from api.errors import StreamLimitError
from api.resources import instances
from api.stream_slots import StreamSlots
from models.instance import WorkflowInstance
from models.settings import Settings
from models.workflow import Workflow
from tests.api.workflow_documents import chain_workflow

Headers = dict[str, str]


@pytest.fixture
def capped(settings: Settings, session_factory: sessionmaker[Session]) -> FlaskClient:
    app: Flask = create_app(settings, session_factory=session_factory, event_streams=2)
    return app.test_client()


@pytest.fixture
def running(capped: FlaskClient, editor: Headers,
            session_factory: sessionmaker[Session]) -> uuid.UUID:
    """A running instance (no worker here, so it stays running)."""
    created = capped.post("/api/workflows", headers=editor, json=chain_workflow("watched", 2))
    assert created.status_code == 201, created.get_json()
    with session_factory() as session:
        workflow = session.get(Workflow, uuid.UUID(created.get_json()["id"]))
        assert workflow is not None
        instance = WorkflowInstance(workflow_id=workflow.id, status="running",
                                    workflow_version_id=workflow.current_version_id,
                                    execution_context={"input": {}})
        session.add(instance)
        session.commit()
        return instance.id


def _open(client: FlaskClient, instance_id: uuid.UUID, headers: Headers) -> Any:
    return client.get(f"/api/workflow-instances/{instance_id}/events", headers=headers,
                      buffered=False)


def _first_chunk(stream: Any) -> str:
    return bytes(next(iter(stream.response))).decode()


# The test client runs every stream in this one thread, and each holds its request context
# from its start until it is closed: they are closed last opened, first closed. (Under
# gunicorn each stream has a thread of its own.)


def test_a_stream_beyond_the_slots_is_refused_and_a_closed_one_frees_its_slot(
        capped: FlaskClient, running: uuid.UUID, viewer: Headers) -> None:
    first = _open(capped, running, viewer)
    assert first.status_code == 200 and _first_chunk(first).startswith("event: status")
    second = _open(capped, running, viewer)
    assert second.status_code == 200 and _first_chunk(second).startswith("event: status")
    refused = _open(capped, running, viewer)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "10"
    error = refused.get_json()["error"]
    assert error["code"] == "too_many_streams" and error["details"] == {"event_streams": 2}
    # Anything but a stream is still answered.
    assert capped.get(f"/api/workflow-instances/{running}", headers=viewer).status_code == 200
    second.close()  # what the server does when a stream ends, fails or is cut short
    again = _open(capped, running, viewer)
    assert again.status_code == 200 and _first_chunk(again).startswith("event: status")
    assert _open(capped, running, viewer).status_code == 503
    again.close()
    first.close()


def test_refusals_take_no_slot_and_an_unknown_instance_takes_none(
        capped: FlaskClient, running: uuid.UUID, viewer: Headers) -> None:
    assert _open(capped, uuid.uuid4(), viewer).status_code == 404
    assert _open(capped, running, {}).status_code == 401
    first = _open(capped, running, viewer)
    second = _open(capped, running, viewer)
    assert [first.status_code, second.status_code] == [200, 200]
    second.close()
    first.close()


def test_a_quiet_stream_writes_a_heartbeat_comment(
        capped: FlaskClient, running: uuid.UUID, viewer: Headers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instances, "EVENT_POLL_SECONDS", 0.01)
    monkeypatch.setattr(instances, "EVENT_HEARTBEAT_SECONDS", 0.05)
    stream = _open(capped, running, viewer)
    chunks: Iterator[bytes] = iter(stream.response)
    assert bytes(next(chunks)).startswith(b"event: status")
    # Nothing changes: the next thing written is a comment, which SSE clients ignore.
    assert bytes(next(chunks)) == b": keep-alive\n\n"
    stream.close()


def test_a_stop_ends_every_open_stream_and_says_why(
        capped: FlaskClient, running: uuid.UUID, viewer: Headers) -> None:
    stream = _open(capped, running, viewer)
    chunks: Iterator[bytes] = iter(stream.response)
    assert bytes(next(chunks)).startswith(b"event: status")
    slots: StreamSlots = capped.application.extensions["flowyard.stream_slots"]
    slots.end_all()  # what `flowyard api` does on SIGTERM
    assert bytes(next(chunks)) == (
        b": the server is stopping; reconnect to follow this instance\n\n")
    assert next(chunks, None) is None  # and the stream is over
    stream.close()


def test_slots_are_taken_without_waiting_and_given_back_once() -> None:
    slots = StreamSlots(1)
    give_back = slots.take()
    with pytest.raises(StreamLimitError, match="holds its 1 live event streams"):
        slots.take()
    give_back()
    give_back()  # a second call must not free a slot another stream holds
    held = slots.take()
    with pytest.raises(StreamLimitError, match="holds its 1"):
        slots.take()
    held()


def test_uncapped_slots_give_every_stream_one() -> None:
    slots = StreamSlots(None)
    for _ in range(100):
        slots.take()


def test_no_slots_refuses_every_stream() -> None:
    with pytest.raises(StreamLimitError, match="holds its 0"):
        StreamSlots(0).take()
