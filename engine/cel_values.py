"""CEL values to and from plain JSON, within the result-size budget; CEL errors as text.

Only JSON goes in (dict with str keys, list, str, int, float, bool, None) and only JSON comes
out: CEL ints and uints become int, doubles float, timestamps ISO 8601 strings (`Z`),
durations strings such as "90s"; bytes, types and non-finite doubles are errors. A result
may hold at most 100,000 values and 1,000,000 string characters (CONTRACT §3 limits).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any, Final

from celpy import celtypes

MAX_RESULT_VALUES: Final = 100_000
MAX_RESULT_CHARS: Final = 1_000_000
MESSAGE_CAP: Final = 240  # characters of an error message
_INNER_CEL_ERROR = re.compile(r"CELEvalError\(\*\(\"((?:[^\"\\]|\\.)*)\"")


def from_json(value: Any) -> Any:
    """A CEL value from plain JSON. Raises: TypeError on anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, list | tuple):
        return celtypes.ListType([from_json(item) for item in value])
    if isinstance(value, Mapping):
        result = celtypes.MapType()
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"map key {key!r} is not a string")
            result[celtypes.StringType(key)] = from_json(item)
        return result
    raise TypeError(f"{type(value).__name__} is not JSON")


class _Budget:
    def __init__(self) -> None:
        self.values = 0
        self.chars = 0

    def spend(self, chars: int = 0) -> None:
        self.values += 1
        self.chars += chars
        if self.values > MAX_RESULT_VALUES or self.chars > MAX_RESULT_CHARS:
            raise ValueError("the result is too large")


def _scalar_to_json(value: Any, budget: _Budget) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.TimestampType):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(value, celtypes.DurationType):
        return f"{value.total_seconds():g}s"
    if isinstance(value, celtypes.BytesType):
        raise ValueError("it yields bytes, which are not JSON")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"it yields {value}, which is not JSON")
        return float(value)
    if isinstance(value, str):
        budget.spend(len(value))
        return str(value)
    if isinstance(value, Exception):
        raise ValueError(evaluation_message(value))
    raise ValueError(f"it yields a {type(value).__name__}, which is not JSON")


def to_json(value: Any, budget: _Budget | None = None) -> Any:
    """Plain JSON from a CEL result. Raises: ValueError when it has no JSON form."""
    budget = budget or _Budget()
    budget.spend()
    if isinstance(value, Mapping):
        return {
            str(_scalar_to_json(key, budget)): to_json(item, budget) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [to_json(item, budget) for item in value]
    return _scalar_to_json(value, budget)


def evaluation_message(error: BaseException) -> str:
    """A CEL evaluation error as one short line (celpy's wrapping and activation dump removed)."""
    text = str(error.args[0]) if error.args else type(error).__name__
    if "no matching overload" in text:
        # celpy wraps the real cause (e.g. a missing key) in an overload error.
        inner = _INNER_CEL_ERROR.search(str(error.args))
        if inner:
            text = inner.group(1).replace("\\'", "'")
    text = text.split(" (in activation", 1)[0]
    return " ".join(text.split())[:MESSAGE_CAP]
