"""Slack, webhook and SMS channels: JSON or form POSTs through the guarded outbound client.

Every URL goes through `worker.outbound.guarded_request`, so these channels obey the same
address guard as the `http` node (HTTP_ALLOWED_HOSTS opens named hosts). No retries here:
any non-2xx answer or transport failure is a `RetryableNotificationError`, a refused
address or missing configuration a `PermanentNotificationError`.

Webhook bodies are signed: `X-Flowyard-Signature: sha256=<hex HMAC-SHA256 of the exact body
bytes>`, keyed by the node's `secret`, else WEBHOOK_SIGNING_SECRET. Every request carries
`Idempotency-Key` (constant across retries) so receivers can drop duplicates.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from worker.notifications.channels import (
    Message,
    PermanentNotificationError,
    RetryableNotificationError,
)
from worker.outbound import (
    OutboundBlockedError,
    OutboundError,
    OutboundResponse,
    guarded_request,
)

SIGNATURE_HEADER = "X-Flowyard-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"

Poster = Callable[..., OutboundResponse]


def sign_body(secret: str, body: bytes) -> str:
    """The signature header value for `body`: `sha256=<hex HMAC-SHA256>`."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_payload(message: Message) -> bytes:
    """The exact JSON bytes a webhook receives (and that the signature covers)."""
    document = {
        "notification_id": message.notification_id,
        "idempotency_key": message.idempotency_key,
        "subject": message.subject,
        "message": message.body,
        **{key: value for key, value in message.metadata.items() if key not in ("secret",)},
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode("utf-8")


class _HttpChannel:
    name = "http"

    def __init__(self, *, allowed_hosts: Iterable[str] = (), timeout_seconds: float = 10.0,
                 poster: Poster = guarded_request) -> None:
        self._allowed_hosts = tuple(allowed_hosts)
        self._timeout = timeout_seconds
        self._poster = poster

    def _post(self, url: str, body: bytes, headers: Mapping[str, str]) -> None:
        try:
            response = self._poster(
                "POST", url, headers=dict(headers), data=body,
                timeout_seconds=self._timeout, max_response_bytes=64 * 1024,
                allowed_hosts=self._allowed_hosts,
            )
        except OutboundBlockedError as error:
            raise PermanentNotificationError(f"{self.name}: {error}") from None
        except OutboundError as error:
            raise RetryableNotificationError(f"{self.name}: {error}") from None
        if not 200 <= response.status < 300:
            snippet = response.body[:200].decode("utf-8", errors="replace")
            raise RetryableNotificationError(
                f"{self.name}: {_redact_url(url)} answered HTTP {response.status}: {snippet}")

    def _urls(self, message: Message) -> tuple[str, ...]:
        if not message.recipients:
            raise PermanentNotificationError(f"{self.name} notification has no recipients")
        return message.recipients


class SlackChannel(_HttpChannel):
    """Posts `{"text": ...}` to each recipient, a Slack incoming-webhook URL."""

    name = "slack"

    def send(self, message: Message) -> None:
        text = f"*{message.subject}*\n{message.body}" if message.subject else message.body
        body = json.dumps({"text": text}).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   IDEMPOTENCY_HEADER: message.idempotency_key}
        for url in self._urls(message):
            self._post(url, body, headers)


class WebhookChannel(_HttpChannel):
    """Posts the signed JSON notification document to each recipient URL."""

    name = "webhook"

    def __init__(self, *, signing_secret: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._signing_secret = signing_secret

    def send(self, message: Message) -> None:
        secret = message.secret or self._signing_secret
        if not secret:
            raise PermanentNotificationError(
                "webhook notification needs a signing secret: set the node's `secret` "
                "or WEBHOOK_SIGNING_SECRET")
        body = webhook_payload(message)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign_body(secret, body),
            IDEMPOTENCY_HEADER: message.idempotency_key,
        }
        for url in self._urls(message):
            self._post(url, body, headers)


class SmsChannel(_HttpChannel):
    """Twilio-compatible form POST (`To`, `From`, `Body`) to SMS_PROVIDER_URL per recipient.

    Credentials go in the URL's user-info (sent as HTTP Basic auth); the sender number comes
    from the node (`from`) or the URL's `From` query parameter, which is not sent on.
    """

    name = "sms"

    def __init__(self, *, provider_url: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._provider_url = provider_url

    def send(self, message: Message) -> None:
        if not self._provider_url:
            raise PermanentNotificationError("sms channel needs SMS_PROVIDER_URL to be set")
        if not message.recipients:
            raise PermanentNotificationError("sms notification has no recipients")
        url, default_sender = _split_sender(self._provider_url)
        sender = message.sender or default_sender
        text = f"{message.subject}: {message.body}" if message.subject else message.body
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   IDEMPOTENCY_HEADER: message.idempotency_key}
        for number in message.recipients:
            form = [("To", number), ("Body", text)]
            if sender:
                form.append(("From", sender))
            self._post(url, urlencode(form).encode("ascii"), headers)


def _split_sender(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    sender = next((value for key, value in query if key.lower() == "from"), None)
    kept = [(key, value) for key, value in query if key.lower() != "from"]
    return urlunsplit(parts._replace(query=urlencode(kept))), sender


def _redact_url(url: str) -> str:
    # Slack webhook URLs are credentials themselves; show only scheme and host in errors.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}"
