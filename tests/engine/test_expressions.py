"""CEL conditions and `{{ }}` templates over plain JSON: types, interpolation, errors, escapes."""

from __future__ import annotations

from typing import Any

import pytest

from engine.expressions import (
    MAX_EXPRESSION_LENGTH,
    ExpressionError,
    ExpressionEvaluationError,
    ExpressionSyntaxError,
    compile_expression,
    evaluate,
    evaluate_condition,
    expression_context,
)
from engine.templating import render_template_value, template_problems

CONTEXT = expression_context(
    input={"severity": 8, "title": "SQLi", "tags": ["a", "b"], "ratio": 0.5, "none": None},
    nodes={"scan": {"output": {"count": 3, "ok": True}, "status": "completed"}},
    instance={"id": "i-1", "workflow_id": "w-1", "triggered_by": "alice"},
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("input.severity >= 7", True),
        ("input.severity", 8),
        ("input.ratio * 2.0", 1.0),
        ("input.title + '!'", "SQLi!"),
        ("input.tags", ["a", "b"]),
        ("input.none", None),
        ("nodes.scan.output.count + 1", 4),
        ("nodes.scan.status == 'completed'", True),
        ("instance.triggered_by", "alice"),
        ("{'a': [1, 2.5, 'x', null, true]}", {"a": [1, 2.5, "x", None, True]}),
        ("has(input.missing)", False),
        ("'b' in input.tags", True),
        ("input.tags.map(t, t + t)", ["aa", "bb"]),
        ("size(input.title)", 4),
        ("input.title.matches('^S')", True),
        ("{1: 'one'}", {"1": "one"}),
        ("timestamp('2026-01-02T03:04:05Z')", "2026-01-02T03:04:05.000000Z"),
        ("duration('90s')", "90s"),
        ("3u", 3),
    ],
)
def test_evaluate_returns_plain_json(source: str, expected: Any) -> None:
    result = evaluate(source, CONTEXT)
    assert result == expected
    assert type(result) is type(expected)


def test_nested_results_are_plain_python_types() -> None:
    result = evaluate("{'x': [input.severity, input.ratio, input.title, true]}", CONTEXT)
    assert [type(item) for item in result["x"]] == [int, float, str, bool]
    assert type(result) is dict and type(result["x"]) is list


def test_edge_output_name() -> None:
    context = expression_context({}, {}, {}, output={"status": 404})
    assert evaluate_condition("output.status == 404", context) is True
    assert "output" not in expression_context({}, {}, {})


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("input.missing", "no such member in mapping: 'missing'"),
        ("input.missing > 3 && true", "no such member in mapping: 'missing'"),
        ("nodes.other.output", "no such member in mapping: 'other'"),
        ("unknown_name", "undeclared reference to 'unknown_name'"),
        ("1 / 0", "divide by zero"),
        ("input.title * 2", "no matching overload"),
        ("9223372036854775807 + 1", "overflow"),
        ("b'raw'", "bytes"),
        ("type(1)", "not JSON"),
    ],
)
def test_evaluation_errors_name_the_expression(source: str, reason: str) -> None:
    with pytest.raises(ExpressionEvaluationError) as caught:
        evaluate(source, CONTEXT)
    message = str(caught.value)
    assert f"`{source}`" in message
    assert reason in message
    assert len(message) < 400


@pytest.mark.parametrize("source", ["input.", "1 +", "a b", "input.x = 2", "'open", "((1)", ""])
def test_syntax_errors_name_the_expression(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError) as caught:
        compile_expression(source)
    if source:
        assert f"`{source}`" in str(caught.value)
        assert "column" in str(caught.value)


def test_conditions_must_yield_a_bool() -> None:
    assert evaluate_condition("input.severity > 7", CONTEXT) is True
    assert evaluate_condition("input.severity > 9", CONTEXT) is False
    for source, kind in [("input.severity", "int"), ("input.none", "null"), ("'x'", "str")]:
        with pytest.raises(ExpressionEvaluationError, match=f"yields {kind}, not a bool"):
            evaluate_condition(source, CONTEXT)


def test_compile_is_cached() -> None:
    assert compile_expression("input.severity + 1") is compile_expression("input.severity + 1")


@pytest.mark.parametrize(
    "source",
    [
        "input.__class__",
        "input.__class__.__mro__",
        "input['__class__']",
        "input.title.__len__",
        "nodes.__dict__",
        "instance.id.upper",
    ],
)
def test_attribute_access_finds_nothing_outside_json(source: str) -> None:
    with pytest.raises(ExpressionEvaluationError):
        evaluate(source, CONTEXT)


@pytest.mark.parametrize(
    "source",
    [
        "x" * (MAX_EXPRESSION_LENGTH + 1),
        "(" * 40 + "1" + ")" * 40,
        "[" * 40 + "]" * 40,
        "-" * 1000 + "1",
        "[1].map(a, [2].map(b, [3].map(c, a + b + c)))",
    ],
    ids=["too long", "deep parens", "deep lists", "long unary chain", "nested comprehensions"],
)
def test_resource_escapes_are_rejected_at_compile_time(source: str) -> None:
    with pytest.raises(ExpressionSyntaxError):
        compile_expression(source)


def test_two_nested_comprehensions_and_moderate_nesting_are_fine() -> None:
    assert evaluate("[1, 2].map(a, [10].map(b, a + b))", {}) == [[11], [12]]
    assert evaluate("(" * 20 + "1" + ")" * 20, {}) == 1


def test_huge_results_fail_cleanly() -> None:
    big = {"s": "x" * 100_000}
    ten = "[" + ",".join(["0"] * 10) + "]"
    source = f"{ten}.map(a, {ten}.map(b, input.s))"
    with pytest.raises(ExpressionEvaluationError, match="too large"):
        evaluate(source, {"input": big})


def test_only_json_goes_in() -> None:
    with pytest.raises(ExpressionEvaluationError, match="not JSON"):
        evaluate("input", {"input": object()})
    with pytest.raises(ExpressionEvaluationError, match="not a string"):
        evaluate("input", {"input": {1: "x"}})


def test_regular_expressions_cannot_backtrack_catastrophically() -> None:
    # RE2 matches this in linear time; a backtracking engine would take minutes.
    context = {"input": {"s": "a" * 5000 + "!"}}
    assert evaluate_condition("input.s.matches('^(a+)+$')", context) is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{ input.severity }}", 8),
        ("{{input.tags}}", ["a", "b"]),
        ("{{ input.none }}", None),
        ("{{ input.severity > 7 }}", True),
        ("Sev {{ input.severity }}: {{ input.title }}", "Sev 8: SQLi"),
        ("{{ input.tags }} / {{ input.none }} / {{ true }}", '["a","b"] / null / true'),
        ("{{ input.severity }}{{ input.severity }}", "88"),
        ("no template", "no template"),
        (
            {"a": ["{{ input.ratio }}", {"b": "x{{ 1 + 1 }}"}], "n": 5},
            {"a": [0.5, {"b": "x2"}], "n": 5},
        ),
        ({"{{ keys }}": "stay"}, {"{{ keys }}": "stay"}),
        ({"$secret": "TOKEN"}, {"$secret": "TOKEN"}),
    ],
)
def test_render_templates(value: Any, expected: Any) -> None:
    assert render_template_value(value, CONTEXT) == expected


def test_template_errors_name_the_expression() -> None:
    with pytest.raises(ExpressionError, match="`input.missing`"):
        render_template_value({"a": ["hello {{ input.missing }}"]}, CONTEXT)


def test_template_problems_report_every_bad_template_with_its_path() -> None:
    value = {
        "ok": "{{ input.a }} and {{ input.b }}",
        "bad": "{{ input. }}",
        "list": ["fine", "{{ 1 + }}", "{{ open"],
        "nested": {"deep": "x {{ ) }}"},
        "number": 5,
    }
    problems = template_problems(value)
    assert [p.split(":", 1)[0] for p in problems] == ["bad", "list[1]", "list[2]", "nested.deep"]
    assert "`input.`" in problems[0]
    assert "without a closing" in problems[2]
    assert template_problems({"a": "{{ input.x }}"}) == []


def test_a_prepared_context_serves_many_evaluations_and_updates_in_place() -> None:
    from engine.expressions import prepare_context

    prepared = prepare_context({"input": {"a": 1}, "nodes": {}})
    assert render_template_value({"x": "{{ input.a }}", "y": ["{{ input.a + 1 }}"]}, prepared) == {
        "x": 1,
        "y": [2],
    }
    prepared.set_entry("nodes", "n", {"output": 5, "status": "completed"})
    assert evaluate("nodes.n.output", prepared) == 5
    assert evaluate("output", prepared.with_name("output", [1])) == [1]
    with pytest.raises(ExpressionEvaluationError, match="not JSON"):
        prepare_context({"input": {1, 2}})


def test_rendering_without_templates_returns_fresh_containers() -> None:
    value = {"a": [1, {"b": "plain"}]}
    rendered = render_template_value(value, {"input": object()})
    assert rendered == value and rendered is not value and rendered["a"] is not value["a"]


def test_repeated_concatenation_is_refused_before_it_grows_huge() -> None:
    source = " + ".join(["input.s"] * 30)
    with pytest.raises(ExpressionEvaluationError, match=r"result of \+ is too large"):
        evaluate(source, {"input": {"s": "x" * 100_000}})
    lists = " + ".join(["input.l"] * 30)
    with pytest.raises(ExpressionEvaluationError, match=r"result of \+ is too large"):
        evaluate(lists, {"input": {"l": list(range(10_000))}})
    assert evaluate("input.s + input.s", {"input": {"s": "ab"}}) == "abab"
    assert evaluate("timestamp('2026-01-01T00:00:00Z') + duration('60s')", {}) == (
        "2026-01-01T00:01:00.000000Z"
    )
