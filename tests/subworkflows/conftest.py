"""Real worker and scheduler processes with MAX_CONCURRENT_WORKFLOWS=1, for subworkflow tests.

A limit of one makes the admission deadlock a parent and its child could cause visible.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.conftest import cluster, runtime  # noqa: F401


@pytest.fixture(scope="module")
def e2e_settings(settings: Any) -> Any:
    return settings.replace(max_concurrent_workflows=1)
