"""Redis-backed rate limits: workflow starts per token (or webhook trigger), failed auth per client.

Fixed one-minute windows counted with INCR/EXPIRE in Redis, so every API replica shares the
same counters. Over the limit the call is refused with 429 and `Retry-After` (seconds until
the window ends). Must not block a request when Redis is down: availability of the API wins
over the limit, and the failure is logged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, Response, current_app, g, request

from api.auth import find_principal
from api.errors import RateLimitedError

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60
_EXTENSION_KEY = "flowyard_ratelimit"
_KEY_PREFIX = "flowyard:ratelimit"
HOOKS_PREFIX = "/api/hooks/"
EVENTS_RULE = "/api/events"


@dataclass
class RateLimiter:
    """Counters in one Redis database; `limit` calls per window per (scope, subject)."""

    client: Any
    limit: int
    window_seconds: int = WINDOW_SECONDS

    def _key(self, scope: str, subject: str, now: float) -> tuple[str, int]:
        window = int(now // self.window_seconds)
        retry_after = max(1, int((window + 1) * self.window_seconds - now + 0.999))
        return f"{_KEY_PREFIX}:{scope}:{subject}:{window}", retry_after

    def hit(self, scope: str, subject: str) -> int | None:
        """Count one call; the seconds to wait when it is over the limit, else None."""
        key, retry_after = self._key(scope, subject, time.time())
        # One round trip, no MULTI/EXEC: should the EXPIRE be lost, the key only lingers;
        # the next window counts under a key of its own.
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.window_seconds + 5)
        count = int(pipe.execute()[0])
        return retry_after if count > self.limit else None

    def exceeded(self, scope: str, subject: str) -> int | None:
        """Without counting: the seconds to wait when the limit is already used up."""
        key, retry_after = self._key(scope, subject, time.time())
        count = int(self.client.get(key) or 0)
        return retry_after if count >= self.limit else None


def _limiter() -> RateLimiter | None:
    limiter: RateLimiter | None = current_app.extensions.get(_EXTENSION_KEY)
    return limiter


def _client_subject() -> str:
    return (request.remote_addr or "unknown")[:64]


def _refuse(retry_after: int, what: str) -> RateLimitedError:
    return RateLimitedError(
        f"too many {what}; retry in {retry_after} s",
        details={"retry_after_seconds": retry_after},
        headers={"Retry-After": str(retry_after)},
    )


def _guard(action: str, check: Any) -> int | None:
    try:
        result: int | None = check()
        return result
    except redis.RedisError:
        logger.warning("rate limiter unavailable (Redis error) while checking %s", action)
        return None


def _check_auth_failures() -> None:
    """Before authentication: a client that failed too often is refused outright."""
    limiter = _limiter()
    if limiter is None or not request.path.startswith("/api/"):
        return
    wait = _guard("auth failures", lambda: limiter.exceeded("authfail", _client_subject()))
    if wait is not None:
        g.rate_limited = True
        raise _refuse(wait, "failed authentications from this client")


def _execute_subject() -> str | None:
    """Who an instance-starting call is counted against, or None for other calls.

    Execute and event calls count per token; webhook calls (no token) per trigger, so one
    leaked webhook URL cannot flood the instance table.
    """
    rule = request.url_rule.rule if request.url_rule is not None else ""
    if request.method != "POST" or not rule.startswith("/api/"):
        return None
    if rule.startswith(HOOKS_PREFIX):
        trigger = next(iter((request.view_args or {}).values()), None)
        return f"hook:{trigger}" if trigger is not None else None
    principal = find_principal()
    if principal is not None and (rule.endswith("/execute") or rule == EVENTS_RULE):
        return f"token:{principal.token_id}"
    return None


def _check_execute() -> None:
    """After authentication: count instance-starting calls per token (or per trigger)."""
    limiter = _limiter()
    subject = _execute_subject() if limiter is not None else None
    if limiter is None or subject is None:
        return
    wait = _guard("execute", lambda: limiter.hit("execute", subject))
    if wait is not None:
        raise _refuse(wait, "calls starting workflows for this token or trigger")


def _count_auth_failure(response: Response) -> Response:
    limiter = _limiter()
    if (limiter is not None and response.status_code == 401
            and request.path.startswith("/api/") and not g.get("rate_limited")):
        _guard("auth failures", lambda: limiter.hit("authfail", _client_subject()))
    return response


def init_rate_limits(app: Flask, redis_url: str | None, limit_per_minute: int) -> None:
    """Install the limits; no Redis URL means no limits (logged once).

    Call after `init_auth` and `init_audit`: the auth-failure check goes right after the
    request-id hook (before authentication), the execute check after authentication.
    """
    if not redis_url:
        logger.warning("REDIS_URL is not set: API rate limits are disabled")
        return
    client = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)
    app.extensions[_EXTENSION_KEY] = RateLimiter(client=client, limit=limit_per_minute)
    hooks = app.before_request_funcs.setdefault(None, [])
    hooks.insert(1 if hooks else 0, _check_auth_failures)
    app.before_request(_check_execute)
    app.after_request(_count_auth_failure)
