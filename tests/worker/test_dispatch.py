"""Publishing decided steps: the messages a Celery worker receives, through the real broker."""

from __future__ import annotations

import ast
import uuid
from types import SimpleNamespace
from typing import Any

from models.steps import StepRef
from tests.worker.helpers import RecordingCelery
from worker.celery_app import make_celery
from worker.dispatch import HARD_LIMIT_GRACE_SECONDS, send_steps, task_name


def _ref(step_type: str = "noop", version: uuid.UUID | None = None) -> StepRef:
    return StepRef(uuid.uuid4(), uuid.uuid4(), "node-a", step_type, 30.0, version)


def test_each_step_arrives_as_a_celery_message_with_what_flower_shows(settings: Any) -> None:
    app = make_celery(settings)
    queue_name = f"flowyard-dispatch-test-{uuid.uuid4().hex[:8]}"
    node_types = {"noop": SimpleNamespace(queue=queue_name)}
    version = uuid.uuid4()
    # Three sends: the first declares the queue, the later ones skip the declaration.
    sent = [_ref(version=version), _ref(), _ref(version=version)]
    send_steps(app, node_types, sent[:1], {sent[0].id: 12.0})
    send_steps(app, node_types, sent[1:], {})
    with app.connection_for_write() as connection, connection.SimpleQueue(queue_name) as queue:
        try:
            received = [queue.get(timeout=5) for _ in sent]
            for message in received:
                message.ack()
        finally:
            queue.queue.delete()
    for ref, message in zip(sent, received, strict=True):
        headers = message.headers
        args, kwargs, _embed = message.decode()
        assert headers["task"] == task_name("noop")
        assert args == [str(ref.id)]
        expected_kwargs = ({"node_id": "node-a", "version_id": str(version)}
                           if ref.workflow_version_id else {})
        assert kwargs == expected_kwargs
        # Flower and `celery inspect` show these: they must read as the call's arguments.
        assert ast.literal_eval(headers["argsrepr"]) == args
        assert ast.literal_eval(headers["kwargsrepr"]) == kwargs
    assert received[0].headers["timelimit"] == [12.0 + HARD_LIMIT_GRACE_SECONDS, 12.0]
    assert received[1].headers["timelimit"] == [None, None]


def test_a_queue_is_declared_on_its_first_publish_per_app_only() -> None:
    node_types = {"noop": SimpleNamespace(queue="q-noop"),
                  "http": SimpleNamespace(queue="q-http")}
    first, second = RecordingCelery(), RecordingCelery()
    send_steps(first, node_types, [_ref(), _ref(), _ref("http")], {})
    send_steps(first, node_types, [_ref("http")], {})
    send_steps(second, node_types, [_ref()], {})
    declared = [("declare" not in options, options["queue"])
                for _name, _args, options in first.sent]
    assert declared == [(True, "q-noop"), (False, "q-noop"), (True, "q-http"),
                        (False, "q-http")]
    assert all(options["declare"] == [] for _n, _a, options in first.sent
               if "declare" in options)
    # Another app (another broker, perhaps) declares for itself.
    assert "declare" not in second.sent[0][2]
