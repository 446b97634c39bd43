"""Delivers one workflow_notifications row: claim, send over its channel, record the outcome.

Owns the retry policy: a retryable failure counts one retry and sets the next attempt
`backoff * 2**retry_count` seconds later (capped at 300) until NOTIFICATION_RETRY_COUNT
retries are spent; a permanent failure, or the last retryable one, marks the row `failed`
with the error. So a failing endpoint is called exactly 1 + NOTIFICATION_RETRY_COUNT times.
Must not hold a database transaction open while talking to the outside world.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session, sessionmaker

from models.db import transaction
from models.notifications import (
    ClaimedNotification,
    claim_notification,
    mark_failed,
    mark_sent,
    schedule_retry,
)
from models.secret_store import SecretStoreError, decrypt_value, read_secret_value
from models.settings import Settings
from worker.notifications.channels import (
    Channel,
    Message,
    NotificationError,
    PermanentNotificationError,
    RetryableNotificationError,
)
from worker.secret_resolution import SecretResolutionError, resolve_secrets

log = structlog.get_logger(__name__)

MAX_BACKOFF_SECONDS = 300.0
# Called inside the recording transaction once a row is final ("sent" or "failed").
FinalHook = Callable[[Session, ClaimedNotification, str, str | None], None]


@dataclass(frozen=True)
class DeliveryResult:
    """`status`: sent, retry (due again in `retry_in` seconds), failed, or skipped (not ours)."""

    status: str
    retry_in: float | None = None
    error: str | None = None
    # The step that created the row, if any (a `required` notification holds it).
    execution_id: uuid.UUID | None = None


def backoff_seconds(first_delay: float, retry_number: int) -> float:
    """Delay before retry `retry_number` (0-based): first delay, doubling, capped at 300 s."""
    return float(min(MAX_BACKOFF_SECONDS, first_delay * (2 ** retry_number)))


def send_lease_seconds(settings: Settings, recipients: int = 1) -> float:
    """How long a claim holds a row: longer than every request of one send can take."""
    per_request = max(1.0, settings.step_lease_seconds / 2)
    return max(float(settings.step_lease_seconds), per_request * max(1, recipients) + 1.0)


class NotificationSender:
    """Sends rows by id; safe to call twice or concurrently for one row (one send wins)."""

    def __init__(self, settings: Settings, session_factory: sessionmaker[Session],
                 channels: Mapping[str, Channel], *, on_final: FinalHook | None = None) -> None:
        self._settings = settings
        self._sessions = session_factory
        self._channels = channels
        self._on_final = on_final

    def deliver(self, notification_id: uuid.UUID) -> DeliveryResult:
        with transaction(self._sessions) as session:
            claim = claim_notification(session, notification_id,
                                       send_lease_seconds(self._settings))
        if claim is None:
            return DeliveryResult("skipped")
        bound = log.bind(notification_id=str(claim.id), channel=claim.channel,
                         retry_count=claim.retry_count)
        try:
            self._send(claim)
        except RetryableNotificationError as error:
            return self._failed(claim, str(error), retryable=True, log=bound)
        except NotificationError as error:
            return self._failed(claim, str(error), retryable=False, log=bound)
        except Exception as error:  # a channel bug must not strand the row in `pending`
            bound.exception("notification.channel_crashed")
            return self._failed(claim, f"{type(error).__name__}: {error}", retryable=True,
                                log=bound)
        with transaction(self._sessions) as session:
            if not mark_sent(session, claim):
                bound.info("notification.stale_claim")
                return DeliveryResult("skipped")
            self._final(session, claim, "sent", None)
        bound.info("notification.sent")
        return DeliveryResult("sent", execution_id=claim.execution_id)

    def _send(self, claim: ClaimedNotification) -> None:
        channel = self._channels.get(claim.channel)
        if channel is None:
            raise PermanentNotificationError(f"unknown notification channel {claim.channel!r}")
        channel.send(self._message(claim))

    def _message(self, claim: ClaimedNotification) -> Message:
        data = claim.notification_data
        metadata: dict[str, Any] = {
            "notification_type": claim.notification_type,
            "workflow_id": _text(claim.workflow_id),
            "instance_id": _text(claim.instance_id),
            "execution_id": _text(claim.execution_id),
        }
        extra = data.get("payload")
        if isinstance(extra, dict):
            metadata["data"] = extra
        sender = data.get("from")
        # Values that held secrets are stored redacted in the row and sealed here.
        sealed = self._unseal(data.get("sealed"))
        recipients = sealed.get("recipients", claim.recipients)
        return Message(
            notification_id=str(claim.id), channel=claim.channel,
            recipients=tuple(str(r) for r in recipients),
            subject=str(sealed.get("subject", claim.subject) or ""),
            body=str(sealed.get("message", claim.message) or ""),
            idempotency_key=claim.idempotency_key, metadata=metadata,
            secret=self._signing_secret(data),
            sender=sender if isinstance(sender, str) else None,
        )

    def _unseal(self, sealed: Any) -> dict[str, Any]:
        if not isinstance(sealed, str):
            return {}
        try:
            values = json.loads(decrypt_value(self._settings, sealed.encode("ascii")))
        except (SecretStoreError, ValueError) as error:
            raise PermanentNotificationError(f"sealed notification fields: {error}") from None
        return values if isinstance(values, dict) else {}

    def _signing_secret(self, data: Mapping[str, Any]) -> str | None:
        """The node's `secret` (stored encrypted) or a notice's literal / `{"$secret": NAME}`."""
        ciphertext = data.get("secret_ciphertext")
        configured = data.get("secret")
        if configured is None and ciphertext is None:
            return None
        try:
            if isinstance(ciphertext, str):
                return decrypt_value(self._settings, ciphertext.encode("ascii"))
            with transaction(self._sessions) as session:
                resolved, _ = resolve_secrets(
                    configured, lambda name: read_secret_value(session, self._settings, name))
        except (SecretResolutionError, SecretStoreError, LookupError, ValueError) as error:
            raise PermanentNotificationError(f"signing secret: {error}") from None
        if not isinstance(resolved, str) or not resolved:
            raise PermanentNotificationError("signing secret must be a non-empty string")
        return resolved

    def _failed(self, claim: ClaimedNotification, error: str, *, retryable: bool,
                log: Any) -> DeliveryResult:
        limit = self._settings.notification_retry_count
        with transaction(self._sessions) as session:
            if retryable and claim.retry_count < limit:
                delay = backoff_seconds(self._settings.notification_backoff_seconds,
                                        claim.retry_count)
                if not schedule_retry(session, claim, error, delay):
                    return DeliveryResult("skipped")
                log.warning("notification.retry", error=error, retry_in=delay)
                return DeliveryResult("retry", retry_in=delay, error=error,
                                      execution_id=claim.execution_id)
            if not mark_failed(session, claim, error):
                return DeliveryResult("skipped")
            self._final(session, claim, "failed", error)
        log.warning("notification.failed", error=error)
        return DeliveryResult("failed", error=error, execution_id=claim.execution_id)

    def _final(self, session: Session, claim: ClaimedNotification, status: str,
               error: str | None) -> None:
        if self._on_final is not None:
            self._on_final(session, claim, status, error)


def _text(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None
