"""CEL expressions over plain JSON: compile, check names, evaluate; no Python objects inside.

Semantics (CONTRACT §3):
- One language everywhere: CEL, through `cel-python` (`celpy`). Expressions are compiled once
  (cached by source) and checked when a workflow is saved (`expression_problems`, and
  engine.templating for `{{ }}` templates; engine.validation).
- Names: `input` (the instance input), `nodes` (`nodes.<id>.output`, `nodes.<id>.status`),
  `instance` (`id`, `workflow_id`, `triggered_by`) and, on an edge, `output` (the source
  node's output). Build them with `expression_context`.
- Only JSON goes in and only JSON comes out (engine.cel_values). Because the activation holds
  CEL values built from JSON only, no attribute walking on Python objects is possible
  (`input.__class__` is a missing map key).
- A missing key is an evaluation error (`input.x` with no `x`); `has(input.x)` tests for it.
- Edge conditions and `condition.expression` must yield a bool (`evaluate_condition`).
- Limits, so a saved expression cannot exhaust a worker: at most 2,000 characters, brackets
  nested at most 32 deep, at most 2 nested comprehension macros (map/filter/all/exists/
  exists_one), a bounded number of evaluation steps (engine.cel_budget), and a JSON result
  of at most 100,000 values and 1,000,000 string characters (`+` refuses to build a longer
  string or list in the first place). Regular expressions (`matches`) run on RE2, so they
  cannot backtrack catastrophically.
- `prepare_context` converts a context to CEL once; `evaluate`, `evaluate_condition` and
  `engine.templating.render_template_value` accept it in place of a plain mapping (one
  conversion, many expressions).
- Errors derive from `ExpressionError`: `ExpressionSyntaxError` at compile time,
  `ExpressionEvaluationError` at run time; every message names the expression.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import celpy
import lark
from celpy import celtypes
from celpy.evaluation import CELEvalError

from engine.cel_budget import BudgetedRunner
from engine.cel_values import (
    MAX_RESULT_CHARS,
    MAX_RESULT_VALUES,
    MESSAGE_CAP,
    evaluation_message,
    from_json,
    to_json,
)

MAX_EXPRESSION_LENGTH: Final = 2_000
MAX_BRACKET_DEPTH: Final = 32
MAX_TREE_DEPTH: Final = 400
MAX_COMPREHENSION_NESTING: Final = 2
_COMPREHENSIONS = frozenset({"map", "filter", "all", "exists", "exists_one"})


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()
# The names of CONTRACT §3: node expressions and templates, and edge conditions.
NODE_NAMES: Final = frozenset({"input", "nodes", "instance"})
EDGE_NAMES: Final = NODE_NAMES | {"output"}


class ExpressionError(Exception):
    """Root of expression errors; the message names the expression."""


class ExpressionSyntaxError(ExpressionError):
    """The expression does not compile (syntax, length or nesting limits)."""


class ExpressionEvaluationError(ExpressionError):
    """The expression compiled but failed, or yielded a value of the wrong kind."""


@dataclass(frozen=True)
class CompiledExpression:
    """A checked CEL expression ready to evaluate."""

    source: str
    program: Any
    tree: Any = None


def _quote(source: str) -> str:
    shown = source if len(source) <= 120 else source[:117] + "..."
    return f"`{shown}`"


@lru_cache(maxsize=1)
def _environment() -> celpy.Environment:
    return celpy.Environment(runner_class=BudgetedRunner)


def _bracket_depth(source: str) -> int:
    """Deepest bracket nesting outside string literals (a cheap guard before parsing)."""
    depth = best = 0
    quote: str | None = None
    escaped = False
    for char in source:
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
            best = max(best, depth)
        elif char in ")]}":
            depth -= 1
    return best


def _check_tree(tree: lark.Tree[Any], source: str) -> None:
    stack: list[tuple[Any, int, int]] = [(tree, 1, 0)]
    while stack:
        node, depth, comprehensions = stack.pop()
        if depth > MAX_TREE_DEPTH:
            raise ExpressionSyntaxError(f"expression {_quote(source)} is nested too deeply")
        if not isinstance(node, lark.Tree):
            continue
        if node.data == "member_dot_arg" and any(
            isinstance(child, lark.Token) and str(child) in _COMPREHENSIONS
            for child in node.children
        ):
            comprehensions += 1
            if comprehensions > MAX_COMPREHENSION_NESTING:
                raise ExpressionSyntaxError(
                    f"expression {_quote(source)} nests more than "
                    f"{MAX_COMPREHENSION_NESTING} comprehensions"
                )
        stack.extend((child, depth + 1, comprehensions) for child in node.children)


_UNEXPECTED_TOKEN = re.compile(r"Unexpected token Token\('([^']*)', '((?:[^'\\]|\\.)*)'\)")
_NO_TERMINAL = re.compile(r"No terminal matches '(.)'")


def _bounded_add(left: Any, right: Any) -> Any:
    """CEL's `+`, refusing strings, bytes and lists that grow past the result limits.

    Without it, `s + s + s ...` over a large input would allocate far more than any result
    may hold before the result check could refuse it.
    """
    if isinstance(left, str | bytes) and isinstance(right, str | bytes):
        if len(left) + len(right) > MAX_RESULT_CHARS:
            return CELEvalError("the result of + is too large", ValueError, None)
    elif isinstance(left, list) and isinstance(right, list):
        if len(left) + len(right) > MAX_RESULT_VALUES:
            return CELEvalError("the result of + is too large", ValueError, None)
    return operator.add(left, right)


def _parse_message(error: Exception) -> str:
    """A one-line reason with the position, from celpy's parse error and lark's cause."""
    cause = str(error.__context__ or "").split("\n", 1)[0]
    reason = "syntax error"
    token = _UNEXPECTED_TOKEN.search(cause)
    terminal = _NO_TERMINAL.search(cause)
    if token is not None:
        reason = "unexpected end" if token.group(1) == "$END" else f"unexpected {token.group(2)!r}"
    elif terminal is not None:
        reason = f"unexpected character {terminal.group(1)!r}"
    column = getattr(error, "column", None)
    where = f" at column {column}" if isinstance(column, int) else ""
    return f"{reason}{where}"[:MESSAGE_CAP]


@lru_cache(maxsize=4096)
def compile_expression(source: str) -> CompiledExpression:
    """Compile and check one CEL expression. Raises: ExpressionSyntaxError."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionSyntaxError("expression is empty")
    if len(source) > MAX_EXPRESSION_LENGTH:
        raise ExpressionSyntaxError(
            f"expression {_quote(source)} is longer than {MAX_EXPRESSION_LENGTH} characters"
        )
    if _bracket_depth(source) > MAX_BRACKET_DEPTH:
        raise ExpressionSyntaxError(f"expression {_quote(source)} is nested too deeply")
    environment = _environment()
    try:
        tree = environment.compile(source)
    except RecursionError:
        raise ExpressionSyntaxError(f"expression {_quote(source)} is nested too deeply") from None
    except Exception as error:  # celpy raises CELParseError and lark errors
        raise ExpressionSyntaxError(
            f"expression {_quote(source)} does not compile: {_parse_message(error)}"
        ) from None
    _check_tree(tree, source)
    program = environment.program(tree, functions={"_+_": _bounded_add})
    return CompiledExpression(source=source, program=program, tree=tree)


# Identifiers CEL itself defines (type names usable as values, e.g. `type(x) == int`).
BUILTIN_NAMES: Final = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)


def _ident_name(node: Any) -> str | None:
    if isinstance(node, lark.Tree) and node.data in ("ident", "dot_ident") and node.children:
        return str(node.children[0])
    return None


def _bound_variable(expr: Any) -> str | None:
    """The variable of a comprehension: its first argument when that is a bare identifier."""
    while isinstance(expr, lark.Tree) and len(expr.children) == 1:
        name = _ident_name(expr)
        if name is not None:
            return name
        expr = expr.children[0]
    return _ident_name(expr)


@lru_cache(maxsize=4096)
def free_names(source: str) -> frozenset[str]:
    """Top-level names an expression reads (not comprehension variables, not CEL's own).

    Raises: ExpressionSyntaxError.
    """
    tree = compile_expression(source).tree
    found: set[str] = set()
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, bound = stack.pop()
        name = _ident_name(node)
        if name is not None:
            if name not in bound and name not in BUILTIN_NAMES:
                found.add(name)
            continue
        if not isinstance(node, lark.Tree):
            continue
        children = node.children
        if (
            node.data == "member_dot_arg"
            and len(children) == 3
            and str(children[1]) in _COMPREHENSIONS
        ):
            target, _, arguments = children
            stack.append((target, bound))
            items = arguments.children if isinstance(arguments, lark.Tree) else []
            variable = _bound_variable(items[0]) if items else None
            inner = bound | {variable} if variable else bound
            stack.extend((item, inner) for item in items[1:])
            continue
        stack.extend((child, bound) for child in children)
    return frozenset(found)


class PreparedContext:
    """A context converted to CEL values once, for many evaluations over it."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def with_name(self, name: str, value: Any) -> PreparedContext:
        """A copy with one more name. Raises: ExpressionEvaluationError when not JSON."""
        return PreparedContext({**self.values, name: _checked_cel(value)})

    def set_entry(self, name: str, key: str, value: Any) -> None:
        """Set `name.key` in place (the name must hold a map). Raises: ExpressionEvaluationError."""
        self.values[name][celtypes.StringType(key)] = _checked_cel(value)


def _checked_cel(value: Any) -> Any:
    try:
        return from_json(value)
    except TypeError as error:
        raise ExpressionEvaluationError(f"context is not JSON: {error}") from None


def prepare_context(context: Mapping[str, Any]) -> PreparedContext:
    """Convert a JSON context once. Raises: ExpressionEvaluationError when it is not JSON."""
    return PreparedContext({key: _checked_cel(value) for key, value in context.items()})


def evaluate(source: str | CompiledExpression, context: Mapping[str, Any] | PreparedContext) -> Any:
    """Evaluate an expression over a JSON context and return plain JSON.

    Raises: ExpressionSyntaxError (does not compile), ExpressionEvaluationError.
    """
    compiled = source if isinstance(source, CompiledExpression) else compile_expression(source)
    name = _quote(compiled.source)
    if isinstance(context, PreparedContext):
        activation = context.values
    else:
        try:
            activation = prepare_context(context).values
        except ExpressionEvaluationError as error:
            raise ExpressionEvaluationError(f"expression {name}: {error}") from None
    try:
        result = compiled.program.evaluate(activation)
    except RecursionError:
        raise ExpressionEvaluationError(f"expression {name} is nested too deeply") from None
    except Exception as error:  # CELEvalError and celpy's own internal failures
        raise ExpressionEvaluationError(
            f"expression {name} failed: {evaluation_message(error)}"
        ) from None
    try:
        return to_json(result)
    except ValueError as error:
        raise ExpressionEvaluationError(f"expression {name} failed: {error}") from None


def evaluate_condition(
    source: str | CompiledExpression, context: Mapping[str, Any] | PreparedContext
) -> bool:
    """Evaluate an expression that must yield a bool. Raises: ExpressionError."""
    result = evaluate(source, context)
    if not isinstance(result, bool):
        text = source.source if isinstance(source, CompiledExpression) else source
        kind = "null" if result is None else type(result).__name__
        raise ExpressionEvaluationError(f"expression {_quote(text)} yields {kind}, not a bool")
    return result


def expression_context(
    input: Any,
    nodes: Mapping[str, Any],
    instance: Mapping[str, Any],
    output: Any = MISSING,
) -> dict[str, Any]:
    """The names of CONTRACT §3; `nodes` maps node id -> {"output", "status"}."""
    context: dict[str, Any] = {"input": input, "nodes": nodes, "instance": instance}
    if output is not MISSING:
        context["output"] = output
    return context


def expression_problems(source: str, names: frozenset[str] | None = None) -> list[str]:
    """Why an expression is unusable: it does not compile, or (with `names`) it reads a name
    outside `names`. Empty when it is fine."""
    try:
        found = free_names(source)
    except ExpressionSyntaxError as error:
        return [str(error)]
    unknown = sorted(found - names) if names is not None else []
    if not unknown:
        return []
    return [
        f"expression {_quote(source)} uses unknown name "
        + ", ".join(repr(name) for name in unknown)
        + " (known: "
        + ", ".join(sorted(names or ()))
        + ")"
    ]
