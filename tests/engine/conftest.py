"""Engine test setup: pure, no services."""

from __future__ import annotations

import pytest

from engine.expressions import compile_expression


@pytest.fixture(scope="session", autouse=True)
def _cel_environment() -> None:
    # celpy raises the recursion limit when its environment is first built; building it
    # before hypothesis runs keeps hypothesis from warning that the limit changed under it.
    compile_expression("true")
