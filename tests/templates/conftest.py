"""Template tests reuse the API fixtures (app on a rolled-back connection, tokens per role)."""

from __future__ import annotations

from tests.api.conftest import (  # noqa: F401
    admin,
    api_connection,
    app,
    client,
    editor,
    operator,
    session_factory,
    token_for,
    viewer,
)

# Real worker and scheduler processes for the tests that run templates.
from tests.e2e.conftest import cluster, e2e_settings, runtime  # noqa: E402, F401
