"""Email over SMTP (SMTP_URL): parsing the URL and sending one message; no retries here.

`SMTP_URL` forms: `smtp://[user:pass@]host[:port][?starttls=true&from=addr&cafile=path]`
(plain SMTP, optionally upgraded with STARTTLS) and `smtps://...` (TLS from the first byte).
Credentials in the URL are percent-decoded and used with SMTP AUTH. `cafile` names extra
trusted certificate authorities (a private CA); certificates are always verified.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from worker.notifications.channels import (
    Message,
    PermanentNotificationError,
    RetryableNotificationError,
)

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None
    sender: str
    cafile: str | None


def parse_smtp_url(url: str) -> SmtpConfig:
    """Read an SMTP_URL.

    Raises:
        PermanentNotificationError: the URL is not a usable smtp:// or smtps:// URL.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise PermanentNotificationError("SMTP_URL must look like smtp://user:pass@host:port")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    implicit_tls = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if implicit_tls else 25)
    except ValueError:
        raise PermanentNotificationError("SMTP_URL has an invalid port") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=query.get("starttls", "").lower() in _TRUE,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        sender=query.get("from") or "flowyard@localhost",
        cafile=query.get("cafile"),
    )


def build_email(message: Message, sender: str) -> EmailMessage:
    """The MIME message: rendered subject/body, and the idempotency key as Message-ID seed."""
    email = EmailMessage()
    email["Subject"] = message.subject
    email["From"] = sender
    email["To"] = ", ".join(message.recipients)
    email["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "flowyard.local"
    # Receivers and relays dedupe on Message-ID, so a retry keeps the same one.
    email["Message-ID"] = make_msgid(idstring=_msgid_safe(message.idempotency_key),
                                     domain=domain)
    email["X-Flowyard-Idempotency-Key"] = message.idempotency_key
    email.set_content(message.body)
    return email


def _msgid_safe(key: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "." for ch in key)


class EmailChannel:
    """Sends each message once to all its recipients through one SMTP session."""

    name = "email"

    def __init__(self, smtp_url: str | None, *, timeout_seconds: float = 10.0) -> None:
        self._smtp_url = smtp_url
        self._timeout = timeout_seconds

    def send(self, message: Message) -> None:
        if not self._smtp_url:
            raise PermanentNotificationError("email channel needs SMTP_URL to be set")
        if not message.recipients:
            raise PermanentNotificationError("email notification has no recipients")
        config = parse_smtp_url(self._smtp_url)
        email = build_email(message, config.sender)
        try:
            with self._connect(config) as client:
                if config.username is not None:
                    client.login(config.username, config.password or "")
                client.send_message(email, from_addr=config.sender,
                                    to_addrs=list(message.recipients))
        except smtplib.SMTPResponseException as error:
            _raise_for_reply(error.smtp_code, error.smtp_error)
        except smtplib.SMTPRecipientsRefused as error:
            raise PermanentNotificationError(
                f"SMTP refused recipients: {sorted(error.recipients)}") from None
        except (smtplib.SMTPException, OSError) as error:
            raise RetryableNotificationError(f"SMTP delivery failed: {error}") from None

    def _connect(self, config: SmtpConfig) -> smtplib.SMTP:
        context = ssl.create_default_context(cafile=config.cafile)
        if config.implicit_tls:
            return smtplib.SMTP_SSL(config.host, config.port, timeout=self._timeout,
                                    context=context, local_hostname=_local_name())
        client = smtplib.SMTP(config.host, config.port, timeout=self._timeout,
                              local_hostname=_local_name())
        try:
            if config.starttls:
                client.starttls(context=context)
        except BaseException:
            client.close()
            raise
        return client


def _local_name() -> str:
    # Avoid a reverse-DNS lookup of our own name in every send (slow in containers).
    return socket.gethostname() or "localhost"


def _raise_for_reply(code: int, text: bytes | str) -> None:
    detail = text.decode(errors="replace") if isinstance(text, bytes) else text
    if 500 <= code < 600:
        raise PermanentNotificationError(f"SMTP server answered {code}: {detail}")
    raise RetryableNotificationError(f"SMTP server answered {code}: {detail}")
