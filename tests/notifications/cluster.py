"""A real worker + scheduler cluster for notification and approval tests, with local sinks.

One SMTP sink (aiosmtpd) per module; the processes get SMTP_URL, a global webhook signing
secret, a small retry count and a short backoff, and may reach 127.0.0.1 over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.notifications.servers import SmtpSink, smtp_server
from tests.processes import scheduler_process, worker_process

RETRY_COUNT = 2
GLOBAL_SECRET = "global-signing-secret"
# A fixed test-only Fernet key, so `$secret` references resolve in the workers.
SECRET_KEY = "q0ZxQ3fZ3W7rRk9pN2bq5u8yC1tV6hJ4aL0sE3dG7mI="


def cluster_settings(settings: Any, smtp_port: int, sms_url: str | None = None) -> Any:
    return settings.replace(
        sms_provider_url=sms_url,
        http_allowed_hosts=("127.0.0.1",),
        smtp_url=f"smtp://127.0.0.1:{smtp_port}?from=flowyard%40example.test",
        webhook_signing_secret=GLOBAL_SECRET,
        notification_retry_count=RETRY_COUNT,
        notification_backoff_seconds=0.2,
        secret_keys=(SECRET_KEY,),
    )


def cluster_env(settings: Any) -> dict[str, str]:
    """What `tests.processes.settings_env` does not carry over by itself."""
    env = {
        "SMTP_URL": settings.smtp_url,
        "WEBHOOK_SIGNING_SECRET": settings.webhook_signing_secret,
        "NOTIFICATION_RETRY_COUNT": str(settings.notification_retry_count),
        "FLOWYARD_NOTIFICATION_BACKOFF": str(settings.notification_backoff_seconds),
        "FLOWYARD_SECRET_KEYS": ",".join(settings.secret_keys),
    }
    if settings.sms_provider_url:
        env["SMS_PROVIDER_URL"] = settings.sms_provider_url
    return env


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    with smtp_server() as sink:
        yield sink


@contextmanager
def running_cluster(settings: Any, *, concurrency: int = 2) -> Iterator[dict[str, Any]]:
    env = cluster_env(settings)
    with worker_process(settings, concurrency=concurrency, extra_env=env) as worker, \
            scheduler_process(settings, extra_env=env) as scheduler:
        yield {"worker": worker, "scheduler": scheduler}


def make_runtime(settings: Any) -> Any:
    """The test process's own runtime (launch, admission, the API's dispatch)."""
    from worker.celery_app import make_celery
    from worker.runtime import build_runtime

    runtime = build_runtime(settings)
    make_celery(settings, runtime)
    return runtime
