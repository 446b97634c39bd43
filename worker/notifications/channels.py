"""The channel interface, the message a channel sends and its errors; no transport code here.

A channel's `send` either returns (delivered to every recipient) or raises
`RetryableNotificationError` (try again later: timeouts, refused connections, 5xx, SMTP 4xx)
or `PermanentNotificationError` (retrying cannot help: refused address, missing
configuration, SMTP 5xx). The sender turns those into the row's retry schedule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


class NotificationError(Exception):
    """Root of notification delivery errors."""


class RetryableNotificationError(NotificationError):
    """Delivery failed in a way a later attempt may fix."""


class PermanentNotificationError(NotificationError):
    """Delivery cannot succeed without a change of configuration."""


@dataclass(frozen=True)
class Message:
    """One notification to deliver; `idempotency_key` is the same on every retry."""

    notification_id: str
    channel: str
    recipients: tuple[str, ...]
    subject: str
    body: str
    idempotency_key: str
    # Context a receiver may want (workflow/instance/step ids, notification type).
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Per-notification signing secret (the node's `secret`), already resolved.
    secret: str | None = None
    # SMS sender number when the node names one.
    sender: str | None = None


class Channel(Protocol):
    """Delivers a message to all its recipients or raises a NotificationError."""

    name: str

    def send(self, message: Message) -> None: ...
