"""Evaluation-step budget: runaway comprehensions fail cleanly, ordinary ones are unaffected."""

from __future__ import annotations

import pytest

from engine.expressions import ExpressionEvaluationError, evaluate, evaluate_condition

BIG = {"input": {"big": list(range(300))}, "nodes": {}, "instance": {}}


def test_nested_comprehensions_over_a_large_list_stop_at_the_budget() -> None:
    with pytest.raises(ExpressionEvaluationError) as raised:
        evaluate("input.big.all(x, input.big.all(y, x + y >= 0))", BIG)
    message = str(raised.value)
    assert "input.big.all" in message and "100,000 steps" in message


def test_a_single_comprehension_over_the_same_list_is_within_budget() -> None:
    assert evaluate("input.big.map(x, x * 2).size()", BIG) == 300
    assert evaluate_condition("input.big.exists(x, x == 299)", BIG) is True


def test_the_budget_is_per_evaluation_not_per_program() -> None:
    source = "input.big.filter(x, x % 2 == 0).size()"
    assert [evaluate(source, BIG) for _ in range(30)] == [150] * 30
