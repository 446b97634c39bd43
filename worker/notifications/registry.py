"""Builds the channel registry (a plain dict by channel name) from settings at start-up."""

from __future__ import annotations

from models.settings import Settings
from worker.notifications.channels import Channel
from worker.notifications.email import EmailChannel
from worker.notifications.http_channels import SlackChannel, SmsChannel, WebhookChannel


def send_timeout_seconds(settings: Settings) -> float:
    """One request's timeout: well inside the send lease, so a live send is never re-sent."""
    return max(1.0, settings.step_lease_seconds / 2)


def build_channels(settings: Settings) -> dict[str, Channel]:
    timeout = send_timeout_seconds(settings)
    allowed = settings.http_allowed_hosts
    return {
        "email": EmailChannel(settings.smtp_url, timeout_seconds=timeout),
        "slack": SlackChannel(allowed_hosts=allowed, timeout_seconds=timeout),
        "webhook": WebhookChannel(signing_secret=settings.webhook_signing_secret,
                                  allowed_hosts=allowed, timeout_seconds=timeout),
        "sms": SmsChannel(provider_url=settings.sms_provider_url, allowed_hosts=allowed,
                          timeout_seconds=timeout),
    }
