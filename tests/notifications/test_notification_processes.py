"""Notification nodes and workflow notices end to end with real worker/scheduler processes.

Local sinks only: aiosmtpd for email and a loopback HTTP server for webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from models.approval import WorkflowNotification
from tests.e2e.helpers import edge, make_workflow, node, start, steps, wait_status
from tests.notifications.cluster import (
    GLOBAL_SECRET,
    RETRY_COUNT,
    cluster_settings,
    make_runtime,
    running_cluster,
    smtp_sink,
)
from tests.notifications.servers import RecordingHttpServer, SmtpSink, http_server
from tests.processes import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    with smtp_sink() as server:
        yield server


@pytest.fixture(scope="module")
def sms_provider() -> Iterator[RecordingHttpServer]:
    with http_server() as server:
        yield server


@pytest.fixture(scope="module")
def flow_settings(settings: Any, sink: SmtpSink, sms_provider: RecordingHttpServer) -> Any:
    url = f"http://AC1:token@{sms_provider.host}/2010-04-01/Messages.json?From=%2B15550100"
    return cluster_settings(settings, sink.port, sms_url=url)


@pytest.fixture(scope="module")
def runtime(flow_settings: Any) -> Iterator[Any]:
    rt = make_runtime(flow_settings)
    yield rt
    rt.engine.dispose()


@pytest.fixture(scope="module")
def cluster(flow_settings: Any, runtime: Any) -> Iterator[dict[str, Any]]:
    with running_cluster(flow_settings) as processes:
        yield processes


def _one_node(runtime: Any, config: dict[str, Any], configuration: dict[str, Any] | None = None,
              **data: Any) -> uuid.UUID:
    return make_workflow(runtime, [node("start", "trigger"), node("tell", "notification",
                                                                  config, **data)],
                         [edge("start", "tell")], configuration)


def _notification(runtime: Any, notification_id: str | uuid.UUID) -> WorkflowNotification:
    with runtime.session_factory() as session:
        row = session.get(WorkflowNotification, uuid.UUID(str(notification_id)))
        assert row is not None
        return row


def _final_row(runtime: Any, notification_id: str) -> WorkflowNotification:
    return wait_until(
        lambda: (row if (row := _notification(runtime, notification_id)).status != "pending"
                 else None), 30.0, interval=0.1, message="a final notification status")


def test_email_arrives_with_rendered_subject_and_body(runtime: Any, cluster: Any,
                                                     sink: SmtpSink) -> None:
    marker = uuid.uuid4().hex[:8]
    workflow_id = _one_node(runtime, {
        "channel": "email", "recipients": ["{{ input.to }}"],
        "subject": "Finding {{ input.title }} " + marker,
        "message": "Severity {{ input.severity }} on {{ input.host }}"})
    instance_id = start(runtime, workflow_id, {"to": "oncall@example.test", "title": "CVE-1",
                                               "severity": 9, "host": "db1"})
    instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "completed", instance.error_details
    output = steps(runtime, instance_id)["tell"].output_data
    assert output["status"] == "pending" or output["status"] == "sent"
    mail = wait_until(lambda: next((m for m in sink.messages if marker in m["Subject"]), None),
                      30.0, interval=0.1, message="the email")
    assert mail["Subject"] == f"Finding CVE-1 {marker}"
    assert mail["To"] == "oncall@example.test"
    assert mail.get_payload(decode=True).decode().strip() == "Severity 9 on db1"
    row = _final_row(runtime, output["notification_id"])
    assert (row.status, row.retry_count, row.channel) == ("sent", 0, "email")
    assert row.sent_at is not None


@pytest.mark.parametrize("node_secret", [None, "node-secret"])
def test_webhook_signature_verifies(runtime: Any, cluster: Any, node_secret: str | None) -> None:
    with http_server() as server:
        config: dict[str, Any] = {"channel": "webhook", "recipients": [server.url("/in")],
                                  "subject": "Build", "message": "Build {{ input.n }} done"}
        if node_secret:
            config["secret"] = node_secret
        instance_id = start(runtime, _one_node(runtime, config), {"n": 7})
        assert wait_status(runtime, instance_id, timeout=30).status == "completed"
        wait_until(lambda: server.requests, 30.0, message="the webhook call")
    [request] = server.requests
    key = (node_secret or GLOBAL_SECRET).encode()
    expected = "sha256=" + hmac.new(key, request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Flowyard-Signature"] == expected
    document = json.loads(request.body)
    assert (document["message"], document["instance_id"]) == ("Build 7 done", str(instance_id))
    step = steps(runtime, instance_id)["tell"]
    assert request.headers["Idempotency-Key"] == document["idempotency_key"]
    assert document["idempotency_key"].startswith(f"{step.id}:")


def test_failing_endpoint_called_one_plus_retries_then_failed(runtime: Any,
                                                             cluster: Any) -> None:
    with http_server(statuses=[500, 502, 503, 504, 500]) as server:
        config = {"channel": "slack", "recipients": [server.url("/T/B")], "message": "hi"}
        instance_id = start(runtime, _one_node(runtime, config))
        # Not required: the workflow completes whatever happens to the notification.
        assert wait_status(runtime, instance_id, timeout=30).status == "completed"
        notification_id = steps(runtime, instance_id)["tell"].output_data["notification_id"]
        row = _final_row(runtime, notification_id)
        calls = len(server.requests)
    assert calls == 1 + RETRY_COUNT
    assert (row.status, row.retry_count) == ("failed", RETRY_COUNT)
    assert "HTTP 503" in (row.error_details or "")
    assert len({r.headers["Idempotency-Key"] for r in server.requests}) == 1


def test_required_notification_failure_fails_the_workflow(runtime: Any, cluster: Any) -> None:
    with http_server(statuses=[500]) as server:
        config = {"channel": "webhook", "recipients": [server.url()], "message": "must arrive",
                  "required": True}
        instance_id = start(runtime, _one_node(runtime, config))
        instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "failed"
    assert "tell" in (instance.error_details or "")
    assert "HTTP 500" in (instance.error_details or "")
    assert len(server.requests) == 1 + RETRY_COUNT


def test_required_notification_success_waits_for_sent(runtime: Any, cluster: Any) -> None:
    with http_server(statuses=[500, 200]) as server:
        config = {"channel": "webhook", "recipients": [server.url()], "message": "arrives",
                  "required": True}
        instance_id = start(runtime, _one_node(runtime, config))
        instance = wait_status(runtime, instance_id, timeout=30)
    assert instance.status == "completed", instance.error_details
    output = steps(runtime, instance_id)["tell"].output_data
    assert output["status"] == "sent"
    assert len(server.requests) == 2


def test_completion_and_failure_notices(runtime: Any, cluster: Any) -> None:
    with http_server() as server:
        notify = {"notify": {
            "on_completion": [{"channel": "webhook", "recipients": [server.url("/done")],
                               "subject": "done {{ instance.id }}",
                               "message": "status {{ instance.status }}"}],
            "on_failure": [{"channel": "webhook", "recipients": [server.url("/failed")],
                            "message": "failed: {{ instance.error }}"}]}}
        good = make_workflow(runtime, [node("start", "trigger")], [], notify)
        bad = make_workflow(runtime, [node("start", "trigger"),
                                      node("boom", "http", {"url": "http://10.255.255.1/"})],
                            [edge("start", "boom")], notify)
        ok_id, bad_id = start(runtime, good), start(runtime, bad)
        assert wait_status(runtime, ok_id, timeout=30).status == "completed"
        assert wait_status(runtime, bad_id, timeout=30).status == "failed"
        wait_until(lambda: len(server.requests) >= 2, 30.0, message="both notices")
    by_path = {r.path: json.loads(r.body) for r in server.requests}
    assert by_path["/done"]["subject"] == f"done {ok_id}"
    assert by_path["/done"]["message"] == "status completed"
    assert by_path["/failed"]["message"].startswith("failed: node 'boom' failed")
    assert by_path["/failed"]["notification_type"] == "on_failure"


def test_secret_recipient_is_used_but_never_stored_in_clear(runtime: Any, cluster: Any) -> None:
    from models.db import transaction
    from models.secret_store import delete_secret

    name = f"SLACK_URL_{uuid.uuid4().hex[:6].upper()}"
    try:
        _send_through_secret_recipient(runtime, name)
    finally:  # other modules share this database and expect no stored secrets
        with transaction(runtime.session_factory) as session:
            delete_secret(session, name)


def _send_through_secret_recipient(runtime: Any, name: str) -> None:
    from models.db import transaction
    from models.secret_store import put_secret

    with http_server() as server:
        secret_url = server.url(f"/services/{uuid.uuid4().hex}")
        with transaction(runtime.session_factory) as session:
            put_secret(session, runtime.settings, name, secret_url)
        config = {"channel": "slack", "recipients": [{"$secret": name}],
                  "message": "psst", "required": True}
        instance_id = start(runtime, _one_node(runtime, config))
        assert wait_status(runtime, instance_id, timeout=30).status == "completed"
    assert [request.path for request in server.requests] == [secret_url.split(server.host)[1]]
    step = steps(runtime, instance_id)["tell"]
    row = _notification(runtime, step.output_data["notification_id"])
    assert row.status == "sent"
    assert row.recipients == [json.dumps({"$secret": name})]
    stored = json.dumps([row.recipients, row.notification_data, row.message])
    assert secret_url not in stored and "/services/" not in stored


def test_sms_goes_to_the_provider_as_a_form_post(runtime: Any, cluster: Any,
                                                sms_provider: RecordingHttpServer) -> None:
    from urllib.parse import parse_qs

    config = {"channel": "sms", "recipients": ["+15550111", "+15550122"],
              "message": "Disk {{ input.pct }}% full"}
    instance_id = start(runtime, _one_node(runtime, config), {"pct": 97})
    assert wait_status(runtime, instance_id, timeout=30).status == "completed"
    notification_id = steps(runtime, instance_id)["tell"].output_data["notification_id"]
    assert _final_row(runtime, notification_id).status == "sent"
    forms = [parse_qs(r.body.decode()) for r in sms_provider.requests]
    assert [(f["To"], f["Body"], f["From"]) for f in forms] == [
        (["+15550111"], ["Disk 97% full"], ["+15550100"]),
        (["+15550122"], ["Disk 97% full"], ["+15550100"])]
    assert all(r.headers["Authorization"].startswith("Basic ") for r in sms_provider.requests)


def test_timed_out_instance_sends_its_failure_notice(runtime: Any, cluster: Any) -> None:
    with http_server() as server:
        configuration = {"execution_timeout_ms": 1000, "notify": {"on_failure": [{
            "channel": "webhook", "recipients": [server.url("/timeout")],
            "message": "{{ instance.status }}: {{ instance.error }}"}]}}
        workflow_id = make_workflow(runtime, [node("start", "trigger"),
                                              node("wait", "delay", {"seconds": 60})],
                                    [edge("start", "wait")], configuration)
        instance_id = start(runtime, workflow_id)
        assert wait_status(runtime, instance_id, timeout=30).status == "failed"
        wait_until(lambda: server.requests, 30.0, message="the failure notice")
    [request] = server.requests
    assert json.loads(request.body)["message"].startswith("failed: workflow execution timed out")
