"""The import direction engine <- models <- worker <- api, checked by walking the source AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "models", "worker", "api")

# Top-level modules each package must never import (directly, lazily or relatively).
FORBIDDEN: dict[str, frozenset[str]] = {
    "engine": frozenset(
        {
            "models",
            "worker",
            "api",
            "migrations",
            "flask",
            "flask_smorest",
            "werkzeug",
            "sqlalchemy",
            "alembic",
            "psycopg",
            "psycopg2",
            "celery",
            "kombu",
            "redis",
            "requests",
            "httpx",
            "urllib3",
            "socket",
            "subprocess",
            "time",
            "structlog",
            "prometheus_client",
        }
    ),
    "models": frozenset({"worker", "api", "flask", "flask_smorest", "celery", "kombu"}),
    "worker": frozenset({"api", "flask", "flask_smorest", "werkzeug"}),
    "api": frozenset(),
}
# The engine reads no clock: these calls are as forbidden as the `time` module.
CLOCK_CALLS = frozenset({"now", "utcnow", "today", "monotonic", "perf_counter"})


def imported_modules(source: str, module: str) -> list[tuple[int, str]]:
    """(line, absolute dotted name) of every import in a module's source."""
    found: list[tuple[int, str]] = []
    package_parts = module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
    return found


def clock_calls(source: str) -> list[tuple[int, str]]:
    return [
        (node.lineno, node.func.attr)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in CLOCK_CALLS
    ]


# The HTTP layer reaches the worker only through this module; process entry points
# (api/commands/) build workers and schedulers and may import what they run.
API_WORKER_DOOR = "worker.gateway"
API_ENTRY_POINTS = "api.commands"


def _outside_the_door(module: str, name: str) -> bool:
    if module.startswith(API_ENTRY_POINTS) or name.split(".")[0] != "worker":
        return False
    return name != API_WORKER_DOOR


def violations(package: str, source: str, module: str) -> list[str]:
    problems = [
        f"{module}:{line} imports {name}"
        for line, name in imported_modules(source, module)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    if package == "engine":
        problems.extend(
            f"{module}:{line} reads the clock ({call})" for line, call in clock_calls(source)
        )
    if package == "api":
        problems.extend(
            f"{module}:{line} imports {name} (use {API_WORKER_DOOR})"
            for line, name in imported_modules(source, module)
            if _outside_the_door(module, name)
        )
    return problems


def modules_of(package: str) -> list[tuple[str, Path]]:
    files = sorted((ROOT / package).rglob("*.py"))
    return [(".".join(path.relative_to(ROOT).with_suffix("").parts), path) for path in files]


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_layering(package: str) -> None:
    modules = modules_of(package)
    assert modules, f"no modules found under {package}/"
    found = [
        problem
        for module, path in modules
        for problem in violations(package, path.read_text(encoding="utf-8"), module)
    ]
    assert found == []


@pytest.mark.parametrize(
    ("package", "module", "source"),
    [
        ("engine", "engine.planner", "import sqlalchemy.orm\n"),
        ("engine", "engine.planner", "def f():\n    from models.db import x\n"),
        ("engine", "engine.sub.mod", "from ...worker import tasks\n"),
        ("engine", "engine.planner", "import datetime\nx = datetime.datetime.now()\n"),
        ("engine", "engine.planner", "from time import monotonic\n"),
        ("models", "models.db", "from worker.dispatch import send\n"),
        ("models", "models.db", "from api import app\n"),
        ("worker", "worker.tasks", "from flask import current_app\n"),
        ("worker", "worker.nodes.http", "from ...api.errors import ApiError\n"),
        ("api", "api.resources.instances", "from worker.launch import create_instance\n"),
        ("api", "api.app", "def f():\n    import worker.plugins\n"),
    ],
)
def test_the_checker_catches_violations(package: str, module: str, source: str) -> None:
    assert violations(package, source, module) != []


def test_the_checker_allows_the_permitted_direction() -> None:
    assert violations("api", "from worker.gateway import launch\nimport flask\n", "api.app") == []
    assert violations("api", "from worker.celery_app import make_celery\n",
                      "api.commands.worker") == []
    assert (
        violations("worker", "from models.db import x\nfrom engine import planner\n", "worker.a")
        == []
    )
    assert (
        violations("engine", "from .document import Node\nimport celpy\n", "engine.planner") == []
    )
