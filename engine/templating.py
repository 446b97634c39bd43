"""`{{ }}` templates in JSON config values: detection, rendering, and save-time checks.

A string config value may embed `{{ CEL }}` (CONTRACT §3). A value that is exactly one
`{{ expr }}` takes the expression's type; otherwise each result is interpolated as text
(strings as they are, everything else as compact JSON: `true`, `null`, `[1,2]`). The
expression inside `{{ }}` may not itself contain `}}` (write `} }` in a map literal).
Expressions are evaluated by engine.expressions, with its names, types and limits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from engine.expressions import PreparedContext, evaluate, expression_problems, prepare_context

_TEMPLATE = re.compile(r"\{\{((?:(?!\}\}).)*)\}\}", re.DOTALL)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def has_template(value: str) -> bool:
    """Whether a string embeds `{{`."""
    return "{{" in value


def render_template_string(value: str, context: Mapping[str, Any] | PreparedContext) -> Any:
    """Render one string: a lone `{{ expr }}` keeps its type, else text interpolation.

    Raises: ExpressionError.
    """
    if "{{" not in value:
        return value
    whole = _TEMPLATE.fullmatch(value)
    if whole is not None:
        return evaluate(whole.group(1).strip(), context)
    return _TEMPLATE.sub(lambda match: _text(evaluate(match.group(1).strip(), context)), value)


def _render(value: Any, context: PreparedContext) -> Any:
    if isinstance(value, str):
        return render_template_string(value, context)
    if isinstance(value, Mapping):
        return {key: _render(item, context) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, context) for item in value]
    return value


def render_template_value(value: Any, context: Mapping[str, Any] | PreparedContext) -> Any:
    """Render every template in a JSON value (dict values and list items, not keys).

    The context is converted once for all templates. Raises: ExpressionError.
    """
    if isinstance(context, PreparedContext):
        return _render(value, context)
    if not any("{{" in text for _, text in _strings(value, "")):
        # Nothing to evaluate: skip converting the context, still return fresh containers.
        return _render(value, PreparedContext({}))
    return _render(value, prepare_context(context))


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


def _string_template_problems(text: str, names: frozenset[str] | None) -> list[str]:
    problems: list[str] = []
    for match in _TEMPLATE.finditer(text):
        problems.extend(expression_problems(match.group(1).strip(), names))
    if "{{" in _TEMPLATE.sub("", text):
        problems.append("template has `{{` without a closing `}}`")
    return problems


def find_template_problems(
    value: Any, path: str = "", names: frozenset[str] | None = None
) -> list[tuple[str, str]]:
    """(path, message) for every template in a JSON value that does not compile or (with
    `names`) reads an unknown name."""
    return [
        (where, message)
        for where, text in _strings(value, path)
        if "{{" in text
        for message in _string_template_problems(text, names)
    ]


def template_problems(value: Any, names: frozenset[str] | None = None) -> list[str]:
    """A message for every template in a JSON value that does not compile (path first)."""
    return [
        f"{where}: {message}" if where else message
        for where, message in find_template_problems(value, names=names)
    ]
