"""Approval tests run against a real worker and scheduler and the real API app in-process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.notifications.cluster import (
    cluster_settings,
    make_runtime,
    running_cluster,
    smtp_sink,
)
from tests.notifications.servers import SmtpSink


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as server:
        yield server


@pytest.fixture(scope="module")
def flow_settings(settings: Any, sink: SmtpSink) -> Any:
    return cluster_settings(settings, sink.port)


@pytest.fixture(scope="module")
def runtime(flow_settings: Any) -> Iterator[Any]:
    rt = make_runtime(flow_settings)
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="module")
def cluster(flow_settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    with running_cluster(flow_settings) as processes:
        yield processes


@pytest.fixture(scope="module")
def api(flow_settings: Any, runtime: Any) -> FlaskClient:
    """The real API app on the session database, dispatching through the test's Celery app."""
    from api.app import create_app

    app = create_app(flow_settings, session_factory=runtime.session_factory,
                     celery_app=runtime.celery)
    return app.test_client()


@pytest.fixture(scope="module")
def token_for(runtime: Any) -> Callable[..., dict[str, str]]:
    from api.auth import issue_token

    def make(*roles: str, name: str) -> dict[str, str]:
        with runtime.session_factory() as session:
            _, token = issue_token(session, name=name, roles=list(roles))
            session.commit()
        return {"Authorization": f"Bearer {token}"}

    return make
