"""Fixtures for tests with real worker and scheduler processes on the session's broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.processes import scheduler_process, worker_process


@pytest.fixture(scope="session")
def runtime(settings: Any) -> Iterator[Any]:
    """The test process's own runtime (launch, admission, dispatch) with a Celery app."""
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    rt = build_runtime(settings)
    make_celery(settings, rt)
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="session")
def cluster(settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    """One worker (all queues, concurrency 2) and one scheduler for the session."""
    with worker_process(settings, concurrency=2) as worker, scheduler_process(settings) as sched:
        yield {"worker": worker, "scheduler": sched}
