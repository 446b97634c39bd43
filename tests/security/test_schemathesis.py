"""Property-based fuzzing of every documented /api operation via /api/openapi.json.

The app runs in-process (WSGI) against the session's PostgreSQL with a valid admin token;
every write is rolled back after the test. A few examples per operation keep it bounded.
Checks: no 5xx, and every response matches the documented schema (status code, content
type, body). Both valid and invalid (negative) inputs are generated.

Drives hypothesis directly rather than through schemathesis' pytest plugin, whose lazy
fixture support does not work with the pytest in use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

Headers = dict[str, str]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES_PER_OPERATION = 6


def _operations(app: Flask) -> list[Any]:
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_openapi_description(
    app: Flask, token_for: Callable[..., Headers], mode: GenerationMode,
) -> None:
    admin = token_for("admin", name="fuzzer")
    operations = _operations(app)
    assert any(op.path == "/api/secrets" for op in operations)
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            headers = dict(case.headers or {})
            headers.update(admin)
            case.call_and_validate(headers=headers, checks=CHECKS)

        check()
