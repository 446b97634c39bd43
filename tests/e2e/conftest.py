"""Fixtures for tests with real worker and scheduler processes on the session's broker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.local_http import LocalHttpServer
from tests.processes import scheduler_process, worker_process


@pytest.fixture(scope="module")
def http_server() -> Iterator[LocalHttpServer]:
    """A local HTTP server on 127.0.0.1 (flaky, slow and counting endpoints)."""
    server = LocalHttpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def e2e_settings(settings: Any) -> Any:
    """Session settings that also let the http node reach the local test server."""
    return settings.replace(http_allowed_hosts=("127.0.0.1",))


@pytest.fixture(scope="module")
def runtime(e2e_settings: Any) -> Iterator[Any]:
    """The test process's own runtime (launch, admission, dispatch) with a Celery app."""
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    rt = build_runtime(e2e_settings)
    make_celery(e2e_settings, rt)
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="module")
def cluster(e2e_settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    """One worker (all queues, concurrency 2) and one scheduler, per test module."""
    with worker_process(e2e_settings, concurrency=2) as worker, \
            scheduler_process(e2e_settings) as sched:
        yield {"worker": worker, "scheduler": sched}
