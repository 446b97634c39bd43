"""The Celery app factory: each app's tasks are its own."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

import worker.celery_app
from worker.celery_app import make_celery
from worker.dispatch import task_name
from worker.notifications.notices import SEND_TASK
from worker.runtime import build_runtime


def test_a_second_app_runs_its_tasks_through_its_own_runtime(
        settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(worker.celery_app, "execute_step",
                        lambda runtime, *_: seen.append(runtime) or "stale")
    first, second = build_runtime(settings), build_runtime(settings)
    try:
        apps = [make_celery(settings, first), make_celery(settings, second)]
        for app in apps:
            app.tasks[task_name("noop")].run(str(uuid.uuid4()))
        assert seen == [first, second]
        # The notification task closes over its app's sender, built from its runtime.
        assert apps[0].tasks[SEND_TASK].run is not apps[1].tasks[SEND_TASK].run
    finally:
        first.engine.dispose()
        second.engine.dispose()
