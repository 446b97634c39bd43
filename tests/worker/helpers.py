"""Runtimes and claims for tests that drive steps through the worker's code themselves."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models.db import transaction
from models.steps import ClaimedStep, claim_step
from tests.e2e.helpers import steps
from worker import control

# High enough that instances other test modules left running never hold a test's back.
ROOMY_LIMIT = 10_000


@contextmanager
def deciding_runtime(settings: Any, max_concurrent: int = ROOMY_LIMIT) -> Iterator[Any]:
    """A runtime that decides but never sends (no Celery app): the test runs the steps."""
    from worker.runtime import build_runtime

    runtime = build_runtime(settings.replace(max_concurrent_workflows=max_concurrent))
    try:
        yield runtime
    finally:
        runtime.engine.dispose()


def claim_node(runtime: Any, instance_id: uuid.UUID, node_id: str) -> ClaimedStep:
    """Claim the node's pending step as a worker would (task id `task-<node>`)."""
    step_id = steps(runtime, instance_id)[node_id].id
    with transaction(runtime.session_factory) as session:
        claimed = claim_step(session, step_id, 30, f"task-{node_id}")
    assert claimed is not None, f"{node_id} was not claimable"
    return claimed


def running_now(runtime: Any) -> int:
    """How many instances run in the shared test database (other modules' included)."""
    with runtime.engine.connect() as connection:
        return int(connection.execute(text(
            "SELECT count(*) FROM workflow_instances WHERE status = 'running'")).scalar_one())


def cancel_open_instances(runtime: Any, workflow_id: uuid.UUID) -> None:
    """Cancel the workflow's pending and running instances, so none holds a slot later."""
    with transaction(runtime.session_factory) as session:
        ids = session.execute(text("SELECT id FROM workflow_instances WHERE workflow_id = :w"
                                   " AND status IN ('pending', 'running')"),
                              {"w": workflow_id}).scalars().all()
        for instance_id in ids:
            control.cancel(session, instance_id)


def refuse_calls(monkeypatch: Any, module: Any, names: list[str], message: str) -> None:
    """Make each of `module`'s `names` fail the test with `message` when it is called."""
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(message)

    for name in names:
        monkeypatch.setattr(module, name, refuse)


def lose_the_database_in(monkeypatch: Any, module: Any, names: list[str]) -> None:
    """Make each of `module`'s `names` fail as a call fails whose database connection broke."""
    def lost(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT ...", {}, psycopg.OperationalError(
            "server closed the connection unexpectedly"))

    for name in names:
        monkeypatch.setattr(module, name, lost)


class RecordingCelery:
    """Stands in for a Celery app where a test only looks at what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[str], dict[str, Any]]] = []

    def send_task(self, name: str, args: list[str], **options: Any) -> None:
        self.sent.append((name, args, options))
