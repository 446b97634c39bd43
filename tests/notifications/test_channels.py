"""Each channel against a real local server: what arrives, headers, signature, error kinds."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qs

import pytest

from tests.notifications.servers import http_server, smtp_server
from worker.notifications.channels import (
    Message,
    PermanentNotificationError,
    RetryableNotificationError,
)
from worker.notifications.email import EmailChannel, parse_smtp_url
from worker.notifications.http_channels import SlackChannel, SmsChannel, WebhookChannel


def _message(recipients: tuple[str, ...], **overrides: object) -> Message:
    values: dict[str, object] = {
        "notification_id": "4b1c0d7e-0000-4000-8000-000000000001",
        "channel": "webhook",
        "recipients": recipients,
        "subject": "Deploy approved",
        "body": "Release 1.2.3 is going out",
        "idempotency_key": "step-1:0",
        "metadata": {"instance_id": "i-1", "notification_type": "node"},
    }
    values.update(overrides)
    return Message(**values)  # type: ignore[arg-type]


def test_webhook_signature_verifies_with_documented_algorithm() -> None:
    with http_server() as server:
        channel = WebhookChannel(signing_secret="global-secret", allowed_hosts=[server.host])
        channel.send(_message((server.url("/a"), server.url("/b"))))
    assert [request.path for request in server.requests] == ["/a", "/b"]
    request = server.requests[0]
    expected = hmac.new(b"global-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Flowyard-Signature"] == f"sha256={expected}"
    assert request.headers["Idempotency-Key"] == "step-1:0"
    document = json.loads(request.body)
    assert document["subject"] == "Deploy approved"
    assert document["message"] == "Release 1.2.3 is going out"
    assert document["instance_id"] == "i-1"


def test_webhook_node_secret_wins_over_global_secret() -> None:
    with http_server() as server:
        channel = WebhookChannel(signing_secret="global-secret", allowed_hosts=[server.host])
        channel.send(_message((server.url(),), secret="node-secret"))
    request = server.requests[0]
    expected = hmac.new(b"node-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Flowyard-Signature"] == f"sha256={expected}"


def test_webhook_without_any_secret_is_a_permanent_error_and_sends_nothing() -> None:
    with http_server() as server:
        channel = WebhookChannel(signing_secret=None, allowed_hosts=[server.host])
        with pytest.raises(PermanentNotificationError, match="signing secret"):
            channel.send(_message((server.url(),)))
    assert server.requests == []


def test_slack_posts_text_json() -> None:
    with http_server() as server:
        SlackChannel(allowed_hosts=[server.host]).send(_message((server.url("/T0/B0"),)))
    request = server.requests[0]
    assert request.path == "/T0/B0"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {"text": "*Deploy approved*\nRelease 1.2.3 is going out"}


def test_sms_form_post_per_recipient_with_basic_auth_and_sender() -> None:
    with http_server() as server:
        provider = f"http://AC123:tok@{server.host}/2010-04-01/Messages.json?From=%2B15550001"
        channel = SmsChannel(provider_url=provider, allowed_hosts=[server.host])
        channel.send(_message(("+15551111", "+15552222")))
    assert len(server.requests) == 2
    forms = [parse_qs(request.body.decode()) for request in server.requests]
    assert [form["To"] for form in forms] == [["+15551111"], ["+15552222"]]
    assert forms[0]["From"] == ["+15550001"]
    assert forms[0]["Body"] == ["Deploy approved: Release 1.2.3 is going out"]
    request = server.requests[0]
    assert request.path == "/2010-04-01/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.headers["Authorization"].startswith("Basic ")


def test_http_error_status_is_retryable() -> None:
    with http_server(statuses=[503]) as server:
        channel = SlackChannel(allowed_hosts=[server.host])
        with pytest.raises(RetryableNotificationError, match="HTTP 503"):
            channel.send(_message((server.url(),)))


def test_loopback_not_allowed_is_permanent_and_never_connects() -> None:
    with http_server() as server:
        channel = SlackChannel(allowed_hosts=[])
        with pytest.raises(PermanentNotificationError):
            channel.send(_message((server.url(),)))
    assert server.requests == []


def test_email_arrives_with_subject_body_and_auth() -> None:
    with smtp_server(require_auth=False) as sink:
        url = f"smtp://127.0.0.1:{sink.port}?from=flowyard%40example.test"
        EmailChannel(url).send(_message(("ops@example.test", "dev@example.test"),
                                        channel="email"))
    [mail] = sink.messages
    assert mail["Subject"] == "Deploy approved"
    assert mail["To"] == "ops@example.test, dev@example.test"
    assert mail["X-Flowyard-Idempotency-Key"] == "step-1:0"
    assert mail.get_payload(decode=True).decode().strip() == "Release 1.2.3 is going out"
    assert sink.envelopes == [("flowyard@example.test", ["ops@example.test",
                                                         "dev@example.test"])]


def test_email_without_smtp_url_is_permanent() -> None:
    with pytest.raises(PermanentNotificationError, match="SMTP_URL"):
        EmailChannel(None).send(_message(("ops@example.test",), channel="email"))


def test_email_connection_refused_is_retryable() -> None:
    with smtp_server() as sink:
        port = sink.port
    with pytest.raises(RetryableNotificationError):
        EmailChannel(f"smtp://127.0.0.1:{port}", timeout_seconds=2).send(
            _message(("ops@example.test",), channel="email"))


def test_smtp_url_parsing() -> None:
    config = parse_smtp_url("smtps://us%40er:p%3Ass@mail.example.test?from=a%40b.test")
    assert (config.host, config.port, config.implicit_tls) == ("mail.example.test", 465, True)
    assert (config.username, config.password, config.sender) == ("us@er", "p:ss", "a@b.test")
    plain = parse_smtp_url("smtp://mail.example.test:2525?starttls=true")
    assert (plain.port, plain.starttls, plain.username) == (2525, True, None)


def test_email_starttls_with_auth(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    from tests.notifications.tls import make_loopback_tls

    context, ca_path = make_loopback_tls(tmp_path)
    with smtp_server(require_auth=True, password="s3cret", tls_context=context) as sink:
        url = (f"smtp://mailer:s3cret@127.0.0.1:{sink.port}"
               f"?starttls=true&cafile={quote(str(ca_path))}")
        EmailChannel(url).send(_message(("ops@example.test",), channel="email"))
    assert sink.logins == ["mailer"]
    assert [mail["Subject"] for mail in sink.messages] == ["Deploy approved"]


def test_email_wrong_password_is_permanent(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from urllib.parse import quote

    from tests.notifications.tls import make_loopback_tls

    context, ca_path = make_loopback_tls(tmp_path)
    with smtp_server(require_auth=True, password="s3cret", tls_context=context) as sink:
        url = (f"smtp://mailer:wrong@127.0.0.1:{sink.port}"
               f"?starttls=true&cafile={quote(str(ca_path))}")
        with pytest.raises(PermanentNotificationError, match="535"):
            EmailChannel(url).send(_message(("ops@example.test",), channel="email"))
    assert sink.messages == []
