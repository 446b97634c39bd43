"""Expression escapes are refused: attribute walking, huge or deeply nested sources, nested
comprehensions and non-JSON results all end in an ExpressionError, never in Python objects.

Pure (engine.expressions only): these are the caps a saved workflow is validated against
and the errors a step fails with cleanly.
"""

from __future__ import annotations

import pytest

from engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    ExpressionSyntaxError,
    compile_expression,
    evaluate,
)
from engine.templating import render_template_value, template_problems

CONTEXT = {"input": {"name": "x", "items": [1, 2, 3], "nested": {"a": 1}}}


@pytest.mark.parametrize("source", [
    "input.__class__",
    "input.__class__.__mro__",
    'input["__class__"]',
    "input.name.__len__",
    "input.items.__class__.__bases__",
    "type(input)",
    "type(input)(1)",
    '__import__("os")',
    'os.system("id")',
    "input.name.encode()",
    "globals()",
])
def test_attribute_walking_and_host_calls_fail_cleanly(source: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(source, CONTEXT)
    assert source[:40] in str(caught.value)  # the message names the expression


@pytest.mark.parametrize("source", [
    "1" + " + 1" * (MAX_EXPRESSION_LENGTH // 4),  # too long
    "(" * 64 + "1" + ")" * 64,  # nested too deep
    "[" * 64 + "1" + "]" * 64,
    "{'a': " * 40 + "1" + "}" * 40,
    "input.items.map(x, input.items.map(y, input.items.map(z, x + y + z)))",
    "input.items.all(a, input.items.exists(b, input.items.filter(c, c > a + b).size() > 0))",
])
def test_oversized_and_deeply_nested_expressions_are_refused_at_compile_time(
    source: str,
) -> None:
    with pytest.raises(ExpressionSyntaxError):
        compile_expression(source)
    assert template_problems({"v": "{{ " + source + " }}"}), "a saved template would pass"


def test_huge_results_fail_the_evaluation() -> None:
    big = {"input": {"s": "x" * 900, "items": list(range(1200))}}
    with pytest.raises(ExpressionError):
        evaluate("input.items.map(i, input.s + input.s)", big)  # ~2 M characters
    with pytest.raises(ExpressionError):
        evaluate("input.items.map(i, input.items)", big)  # ~1.4 M values


def test_templates_render_json_only() -> None:
    assert render_template_value({"greeting": "hi {{ input.name }}"}, CONTEXT) == {
        "greeting": "hi x"}
    with pytest.raises(ExpressionError):
        render_template_value("{{ type(input) }}", CONTEXT)
    with pytest.raises(ExpressionError):
        render_template_value("{{ b'raw' }}", CONTEXT)
