"""The runtime worker tests share: it decides but never sends, so each test runs the steps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.worker.helpers import deciding_runtime


@pytest.fixture(scope="module")
def runtime(settings: Any) -> Iterator[Any]:
    with deciding_runtime(settings) as rt:
        yield rt
