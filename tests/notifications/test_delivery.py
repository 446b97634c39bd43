"""Delivering notification rows: retries with backoff, final failure, one send per claim."""

from __future__ import annotations

import threading
import uuid

from sqlalchemy.orm import Session, sessionmaker

from models.db import transaction
from models.notifications import NewNotification, create_notification, find_notification
from tests.notifications.servers import http_server, wait_until
from worker.notifications.registry import build_channels
from worker.notifications.sender import NotificationSender, backoff_seconds


def _new(url: str, key: str | None = None) -> NewNotification:
    return NewNotification(
        notification_type="node", channel="webhook", recipients=[url], subject="Build",
        message="Build finished", idempotency_key=key or f"test:{uuid.uuid4()}",
    )


def _create(factory: sessionmaker[Session], new: NewNotification) -> uuid.UUID:
    with transaction(factory) as session:
        notification_id, created = create_notification(session, new)
    assert created
    return notification_id


def _row(factory: sessionmaker[Session], notification_id: uuid.UUID):  # type: ignore[no-untyped-def]
    with factory() as session:
        return find_notification(session, notification_id)


def test_failing_endpoint_is_called_one_plus_retry_count_times(settings, session_factory):  # type: ignore[no-untyped-def]
    with http_server(statuses=[500, 502, 503]) as server:
        config = settings.replace(http_allowed_hosts=(server.host,), notification_retry_count=2,
                                  notification_backoff_seconds=0.0,
                                  webhook_signing_secret="k")
        sender = NotificationSender(config, session_factory, build_channels(config))
        notification_id = _create(session_factory, _new(server.url()))
        outcomes = [sender.deliver(notification_id).status for _ in range(5)]
    assert outcomes == ["retry", "retry", "failed", "skipped", "skipped"]
    assert len(server.requests) == 3
    keys = {request.headers["Idempotency-Key"] for request in server.requests}
    assert len(keys) == 1
    row = _row(session_factory, notification_id)
    assert (row.status, row.retry_count) == ("failed", 2)
    assert "HTTP 503" in row.error_details


def test_success_after_a_retry_marks_sent(settings, session_factory):  # type: ignore[no-untyped-def]
    with http_server(statuses=[500, 200]) as server:
        config = settings.replace(http_allowed_hosts=(server.host,),
                                  notification_backoff_seconds=0.0, webhook_signing_secret="k")
        sender = NotificationSender(config, session_factory, build_channels(config))
        notification_id = _create(session_factory, _new(server.url()))
        assert sender.deliver(notification_id).status == "retry"
        assert sender.deliver(notification_id).status == "sent"
    row = _row(session_factory, notification_id)
    assert (row.status, row.retry_count, row.error_details) == ("sent", 1, None)
    assert row.sent_at is not None


def test_retry_is_not_due_before_its_backoff(settings, session_factory):  # type: ignore[no-untyped-def]
    with http_server(statuses=[500]) as server:
        config = settings.replace(http_allowed_hosts=(server.host,),
                                  notification_backoff_seconds=120.0, webhook_signing_secret="k")
        sender = NotificationSender(config, session_factory, build_channels(config))
        notification_id = _create(session_factory, _new(server.url()))
        result = sender.deliver(notification_id)
        assert (result.status, result.retry_in) == ("retry", 120.0)
        assert sender.deliver(notification_id).status == "skipped"
    assert len(server.requests) == 1


def test_permanent_error_fails_at_once(settings, session_factory):  # type: ignore[no-untyped-def]
    with http_server() as server:
        # Loopback is not in HTTP_ALLOWED_HOSTS: the guard refuses, retrying cannot help.
        config = settings.replace(webhook_signing_secret="k")
        sender = NotificationSender(config, session_factory, build_channels(config))
        notification_id = _create(session_factory, _new(server.url()))
        assert sender.deliver(notification_id).status == "failed"
    assert server.requests == []
    row = _row(session_factory, notification_id)
    assert (row.status, row.retry_count) == ("failed", 0)


def test_concurrent_deliveries_send_once(settings, session_factory):  # type: ignore[no-untyped-def]
    hold = threading.Event()
    with http_server(hold=hold) as server:
        config = settings.replace(http_allowed_hosts=(server.host,), webhook_signing_secret="k")
        sender = NotificationSender(config, session_factory, build_channels(config))
        notification_id = _create(session_factory, _new(server.url()))
        results: list[str] = []
        first = threading.Thread(target=lambda: results.append(
            sender.deliver(notification_id).status))
        first.start()
        wait_until(lambda: server.requests, timeout=10, message="the first send")
        assert sender.deliver(notification_id).status == "skipped"
        hold.set()
        first.join(10)
    assert results == ["sent"]
    assert len(server.requests) == 1


def test_same_idempotency_key_creates_one_row(session_factory):  # type: ignore[no-untyped-def]
    new = _new("http://127.0.0.1:9/unused", key=f"dup:{uuid.uuid4()}")
    with transaction(session_factory) as session:
        first = create_notification(session, new)
        second = create_notification(session, new)
    assert first[1] is True and second == (first[0], False)


def test_backoff_doubles_and_caps() -> None:
    assert [backoff_seconds(1.0, n) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_seconds(10.0, 10) == 300.0
