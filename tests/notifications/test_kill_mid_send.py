"""A worker killed with SIGKILL in the middle of a send does not lose the notification.

Its own module: no other worker may be consuming the `notification` queue meanwhile.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from models.approval import WorkflowNotification
from tests.e2e.helpers import edge, make_workflow, node, start, steps
from tests.notifications.cluster import (
    cluster_env,
    cluster_settings,
    make_runtime,
    running_cluster,
)
from tests.notifications.servers import http_server
from tests.processes import wait_until, worker_process

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def flow_settings(settings: Any) -> Any:
    return cluster_settings(settings, smtp_port=9)  # email is not used here


@pytest.fixture(scope="module")
def runtime(flow_settings: Any) -> Iterator[Any]:
    rt = make_runtime(flow_settings)
    yield rt
    rt.engine.dispose()


def _notification(runtime: Any, notification_id: str) -> WorkflowNotification:
    with runtime.session_factory() as session:
        row = session.get(WorkflowNotification, uuid.UUID(notification_id))
        assert row is not None
        return row


def test_worker_killed_mid_send_does_not_lose_the_notification(
        runtime: Any, flow_settings: Any) -> None:
    hold = threading.Event()
    env = cluster_env(flow_settings)
    with http_server(hold=hold) as server, running_cluster(flow_settings, concurrency=1) as procs:
        config = {"channel": "webhook", "recipients": [server.url()], "message": "survive"}
        workflow_id = make_workflow(runtime, [node("start", "trigger"),
                                              node("tell", "notification", config)],
                                    [edge("start", "tell")])
        instance_id = start(runtime, workflow_id)
        wait_until(lambda: server.requests, 30.0, message="the first send attempt")
        worker = procs["worker"]
        worker.signal_group(signal.SIGKILL)
        worker.popen.wait(10)
        hold.set()  # the killed attempt's connection is gone; later calls answer at once
        notification_id = steps(runtime, instance_id)["tell"].output_data["notification_id"]
        assert _notification(runtime, notification_id).status == "pending"
        with worker_process(flow_settings, concurrency=1, name="replacement", extra_env=env):
            row = wait_until(lambda: (r if (r := _notification(runtime, notification_id)).status
                                      != "pending" else None),
                             60.0, interval=0.1, message="the re-sent notification")
    assert row.status == "sent"
    assert len(server.requests) == 2
    keys = {request.headers["Idempotency-Key"] for request in server.requests}
    assert len(keys) == 1
