"""Built-in node handlers; each module exposes NODE_TYPE (the engine spec with `run` attached)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def with_run(name: str, run: Callable[[dict[str, Any], Any], Any]) -> Any:
    """The engine's built-in spec for `name` with this handler attached."""
    from engine.nodetypes import BUILTIN_NODE_TYPES

    return dataclasses.replace(BUILTIN_NODE_TYPES[name], run=run)
