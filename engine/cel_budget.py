"""A celpy runner that stops an evaluation after a fixed number of evaluation steps.

CEL has no loops, but comprehension macros (`all`, `exists`, `map`, `filter`) nested over
large input lists make evaluation O(n^k). Counting every AST node the interpreter visits,
across the sub-evaluators macros create, bounds the CPU one expression can take wherever it
runs (an edge condition under the instance lock, an event filter in an API request).
"""

from __future__ import annotations

from typing import Any, Final

import celpy
from celpy.evaluation import Evaluator

MAX_EVALUATION_STEPS: Final = 100_000


class EvaluationBudgetError(Exception):
    """An expression took more evaluation steps than MAX_EVALUATION_STEPS."""


class _StepBudget:
    __slots__ = ("remaining",)

    def __init__(self, steps: int) -> None:
        self.remaining = steps

    def spend(self) -> None:
        self.remaining -= 1
        if self.remaining < 0:
            raise EvaluationBudgetError(
                f"evaluation took more than {MAX_EVALUATION_STEPS:,} steps "
                "(nested comprehensions over large lists?)"
            )


class _BudgetedEvaluator(Evaluator):
    def __init__(self, ast: Any, activation: Any, budget: _StepBudget) -> None:
        super().__init__(ast, activation=activation)
        self.budget = budget

    def _visit_tree(self, tree: Any) -> Any:
        self.budget.spend()
        return super()._visit_tree(tree)

    def sub_evaluator(self, ast: Any) -> Evaluator:
        # Macros evaluate their body in sub-evaluators: they share the one budget.
        return _BudgetedEvaluator(ast, self.activation, self.budget)


class BudgetedRunner(celpy.InterpretedRunner):
    """celpy's interpreter with an evaluation-step budget per `evaluate` call."""

    def evaluate(self, context: Any) -> Any:
        evaluator = _BudgetedEvaluator(self.ast, self.new_activation(),
                                       _StepBudget(MAX_EVALUATION_STEPS))
        return evaluator.evaluate(context)
