"""The `http` node: one guarded request (address guard, no redirects, timeout, size cap).

The request carries `Idempotency-Key: <step id>:<attempt>` so the receiver can drop the
duplicate of a re-delivered step. Non-expected statuses fail the step (5xx and 429 retryable).
"""

from __future__ import annotations

import json
from typing import Any

from engine.document import as_number
from worker.errors import PermanentNodeError, RetryableNodeError
from worker.nodes import with_run
from worker.outbound import guarded_request

DEFAULT_TIMEOUT_SECONDS = 30.0


def _expected(config: dict[str, Any], status: int) -> bool:
    expect = config.get("expect_status")
    if isinstance(expect, list) and expect:
        return status in expect
    return 200 <= status < 300


def _decode(body: bytes, headers: dict[str, str]) -> Any:
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type.lower():
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def run(config: dict[str, Any], context: Any) -> dict[str, Any]:
    method = str(config.get("method", "GET")).upper()
    headers = {str(k): str(v) for k, v in (config.get("headers") or {}).items()}
    headers.setdefault("Idempotency-Key", context.idempotency_key)
    timeout = as_number(config.get("timeout_seconds")) or DEFAULT_TIMEOUT_SECONDS
    body = config.get("body")
    response = guarded_request(
        method, str(config.get("url", "")), headers=headers,
        params=config.get("query") or None,
        data=body if isinstance(body, str) else None,
        json_body=body if body is not None and not isinstance(body, str) else None,
        timeout_seconds=timeout, allowed_hosts=context.settings.http_allowed_hosts,
    )
    output = {"status": response.status, "headers": dict(response.headers),
              "body": _decode(response.body, dict(response.headers))}
    if not _expected(config, response.status):
        message = f"{method} {config.get('url')} answered HTTP {response.status}"
        if response.status >= 500 or response.status == 429:
            raise RetryableNodeError(message)
        raise PermanentNodeError(message)
    return output


NODE_TYPE = with_run("http", run)
