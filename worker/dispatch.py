"""Send decided steps to their Celery queues after commit; only ids travel through Redis.

A message carries the step's id and, when the sender knows them, its node id and workflow
version: a step that needs nothing else read can then be claimed without reading first.

Sending never touches the database state machine: a lost message is re-sent by the
reconciler, a duplicate is fenced by the claim. (The API reaches the worker through
worker/gateway.py, not through here.)
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.instance import WorkflowInstance
from models.settings import Settings
from models.steps import StepRef
from worker.runtime import GraphCache

TASK_PREFIX = "flowyard.node."
# Extra seconds between the soft limit (the step fails and may retry) and the hard kill.
HARD_LIMIT_GRACE_SECONDS = 10


def task_name(step_type: str) -> str:
    return f"{TASK_PREFIX}{step_type}"


def queue_of(node_types: Mapping[str, Any], step_type: str) -> str:
    node_type = node_types.get(step_type)
    queue = getattr(node_type, "queue", None)
    return queue if isinstance(queue, str) and queue else step_type


def step_timeouts(session: Session, graphs: GraphCache, settings: Settings,
                  steps: Iterable[StepRef]) -> dict[uuid.UUID, float]:
    """Seconds one attempt of each step may run: the node's timeout_seconds or the default."""
    wanted = list(steps)
    instance_ids = {step.instance_id for step in wanted}
    versions: dict[uuid.UUID, uuid.UUID | None] = dict(
        session.execute(
            select(WorkflowInstance.id, WorkflowInstance.workflow_version_id)
            .where(WorkflowInstance.id.in_(instance_ids))
        ).all()
    ) if instance_ids else {}
    result: dict[uuid.UUID, float] = {}
    for step in wanted:
        timeout = float(settings.default_step_timeout_seconds)
        version_id = versions.get(step.instance_id)
        if version_id is not None:
            graph, _ = graphs.get(session, version_id)
            node = graph.node_by_id.get(step.node_id)
            if node is not None and node.timeout_seconds:
                timeout = float(node.timeout_seconds)
        result[step.id] = timeout
    return result


# The queues each Celery app of this process has declared to its broker. kombu keeps such a
# cache too, but consults it only after copying and binding the queue anew on every publish
# (a quarter of a publish's CPU). A queue once declared stays (Celery's are durable), and a
# message lost all the same is re-sent by the reconciler.
_declared_queues: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()


def send_steps(celery_app: Any, node_types: Mapping[str, Any], steps: Iterable[StepRef],
               timeouts: Mapping[uuid.UUID, float], countdown: float | None = None) -> None:
    """Publish one task message per step to its type's queue."""
    declared = _declared_queues.setdefault(celery_app, set())
    for step in steps:
        timeout = timeouts.get(step.id)
        queue = queue_of(node_types, step.step_type)
        args = [str(step.id)]
        kwargs = ({"node_id": step.node_id, "version_id": str(step.workflow_version_id)}
                  if step.workflow_version_id is not None else {})
        # What Flower shows of the call. Celery would build the same text with its
        # generic, size-capped repr; these few short strings need neither.
        options: dict[str, Any] = {"queue": queue, "argsrepr": repr(args),
                                   "kwargsrepr": repr(kwargs)}
        if kwargs:
            options["kwargs"] = kwargs
        if queue in declared:
            options["declare"] = []
        if timeout is not None:
            options["soft_time_limit"] = timeout
            options["time_limit"] = timeout + HARD_LIMIT_GRACE_SECONDS
        if countdown:
            options["countdown"] = countdown
        celery_app.send_task(task_name(step.step_type), args=args, **options)
        declared.add(queue)
