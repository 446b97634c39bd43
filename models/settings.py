"""Process settings: one frozen object read from the environment; never read env elsewhere.

Only process entry points (CLI commands, the Celery app module, test fixtures) call
`Settings.from_env`. Everything else receives a `Settings` instance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


class SettingsError(ValueError):
    """A configuration variable has a value the process cannot start with."""


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _float(name: str, raw: str, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r} must be at least {minimum}")
    return value


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if scheme not in schemes:
        raise SettingsError(f"{name}={raw!r} must be a URL starting with one of {schemes}")
    return raw


def _fernet_keys(name: str, raw: str) -> tuple[str, ...]:
    keys = _csv(raw)
    from cryptography.fernet import Fernet  # local: only needed when keys are configured

    for index, key in enumerate(keys):
        try:
            Fernet(key.encode())
        except (ValueError, TypeError):
            raise SettingsError(
                f"{name}: key #{index + 1} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes; make one with `python -c "
                "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)"
            ) from None
    return keys


TASK_EVENT_MODES = ("on-demand", "always")


def _task_events(name: str, raw: str) -> str:
    mode = raw.lower()
    if mode not in TASK_EVENT_MODES:
        raise SettingsError(f"{name} must be one of {', '.join(TASK_EVENT_MODES)}, not {raw!r}")
    return mode


def _log_format(name: str, raw: str) -> str:
    if raw not in ("json", "console"):
        raise SettingsError(f"{name}={raw!r} must be 'json' or 'console'")
    return raw


_DB_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg")
_REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "amqp", "pyamqp")


@dataclass(frozen=True)
class Settings:
    """Every knob of a Flowyard process (CONTRACT §9 plus documented FLOWYARD_* extras)."""

    database_url: str | None = None
    redis_url: str | None = None
    broker_url: str | None = None
    workflow_execution_timeout_ms: int = 3_600_000
    max_concurrent_workflows: int = 10
    notification_retry_count: int = 3
    secret_keys: tuple[str, ...] = ()
    smtp_url: str | None = None
    sms_provider_url: str | None = None
    webhook_signing_secret: str | None = None
    http_allowed_hosts: tuple[str, ...] = ()
    log_format: str = "console"
    # Limits on a workflow document (CONTRACT §1, configurable).
    max_nodes: int = 1000
    max_edges: int = 5000
    max_document_bytes: int = 1024 * 1024
    # Largest request body the API accepts (413 above it).
    max_request_bytes: int = 2 * 1024 * 1024
    # How often the reconciler runs, and how long a claimed step may go without a heartbeat.
    reconcile_interval_seconds: float = 1.0
    step_lease_seconds: int = 30
    # Upper bound of one attempt when a node sets no timeout_seconds.
    default_step_timeout_seconds: int = 300
    # Celery worker attempts before a step whose worker keeps dying is failed.
    max_delivery_attempts: int = 5
    # Rate limit on execute and failed logins, per token / client, per minute.
    rate_limit_per_minute: int = 600
    # File a Celery worker touches periodically; the Kubernetes liveness probe checks its age.
    worker_heartbeat_file: str | None = None
    # First delay between notification retries (doubling, capped at 300 s).
    notification_backoff_seconds: float = 1.0
    # Test hook: schedulers evaluate cron due times on a clock this many times faster than
    # real time (1.0 in production), so a `* * * * *` schedule can be tested in seconds.
    schedule_clock_speed: float = 1.0
    # Celery task events: "on-demand" (workers send them once a monitor such as Flower asks,
    # as Flower does while it runs) or "always" (every worker from start-up, plus the
    # producer-side task-sent event). Events cost more CPU per step than the step itself.
    task_events: str = "on-demand"

    @property
    def celery_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping.

        Raises:
            SettingsError: naming the first variable whose value is invalid.
        """
        values: dict[str, Any] = {}

        def read(name: str, attr: str, parse: Callable[[str, str], Any]) -> None:
            raw = environ.get(name)
            if raw is not None and raw.strip() != "":
                values[attr] = parse(name, raw.strip())

        read("DATABASE_URL", "database_url", lambda n, r: _url(n, r, _DB_SCHEMES))
        read("REDIS_URL", "redis_url", lambda n, r: _url(n, r, _REDIS_SCHEMES))
        read("CELERY_BROKER_URL", "broker_url", lambda n, r: _url(n, r, _REDIS_SCHEMES))
        read("WORKFLOW_EXECUTION_TIMEOUT", "workflow_execution_timeout_ms",
             lambda n, r: _int(n, r, 1))
        read("MAX_CONCURRENT_WORKFLOWS", "max_concurrent_workflows", lambda n, r: _int(n, r, 1))
        read("NOTIFICATION_RETRY_COUNT", "notification_retry_count", _int)
        read("FLOWYARD_SECRET_KEYS", "secret_keys", _fernet_keys)
        read("SMTP_URL", "smtp_url", lambda n, r: _url(n, r, ("smtp", "smtps")))
        read("SMS_PROVIDER_URL", "sms_provider_url", lambda n, r: _url(n, r, ("http", "https")))
        read("WEBHOOK_SIGNING_SECRET", "webhook_signing_secret", lambda n, r: r)
        read("HTTP_ALLOWED_HOSTS", "http_allowed_hosts", lambda n, r: _csv(r))
        read("LOG_FORMAT", "log_format", _log_format)
        read("FLOWYARD_MAX_NODES", "max_nodes", lambda n, r: _int(n, r, 1))
        read("FLOWYARD_MAX_EDGES", "max_edges", lambda n, r: _int(n, r, 0))
        read("FLOWYARD_MAX_DOCUMENT_BYTES", "max_document_bytes", lambda n, r: _int(n, r, 1024))
        read("FLOWYARD_MAX_REQUEST_BYTES", "max_request_bytes", lambda n, r: _int(n, r, 1024))
        read("FLOWYARD_RECONCILE_INTERVAL", "reconcile_interval_seconds",
             lambda n, r: _float(n, r, 0.05))
        read("FLOWYARD_STEP_LEASE_SECONDS", "step_lease_seconds", lambda n, r: _int(n, r, 1))
        read("FLOWYARD_DEFAULT_STEP_TIMEOUT", "default_step_timeout_seconds",
             lambda n, r: _int(n, r, 1))
        read("FLOWYARD_MAX_DELIVERY_ATTEMPTS", "max_delivery_attempts", lambda n, r: _int(n, r, 1))
        read("FLOWYARD_RATE_LIMIT_PER_MINUTE", "rate_limit_per_minute", lambda n, r: _int(n, r, 1))
        read("FLOWYARD_WORKER_HEARTBEAT_FILE", "worker_heartbeat_file", lambda n, r: r)
        read("FLOWYARD_NOTIFICATION_BACKOFF", "notification_backoff_seconds",
             lambda n, r: _float(n, r, 0.0))
        read("FLOWYARD_SCHEDULE_CLOCK_SPEED", "schedule_clock_speed",
             lambda n, r: _float(n, r, 1.0))
        read("FLOWYARD_TASK_EVENTS", "task_events", _task_events)
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SettingsError("DATABASE_URL is not set (e.g. postgresql://user@host:5432/db)")
        return self.database_url

    def require_broker_url(self) -> str:
        url = self.celery_broker_url
        if not url:
            raise SettingsError("CELERY_BROKER_URL or REDIS_URL is not set (e.g. redis://host:6379/0)")
        return url
