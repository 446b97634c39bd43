"""Build workflows, start instances and wait for them, for tests with real workers."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from models.db import transaction
from models.instance import WorkflowExecution, WorkflowInstance
from models.workflow import Workflow
from tests.processes import wait_until
from worker.admission import admit_and_dispatch, admit_new
from worker.launch import create_instance
from worker.runtime import WorkerRuntime

FINAL = ("completed", "failed", "cancelled")


def node(node_id: str, node_type: str, config: dict[str, Any] | None = None,
         **data: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "position": {"x": 0, "y": 0},
            "data": {"label": node_id, "config": config or {}, **data}}


def edge(source: str, target: str, handle: str | None = None,
         condition: str | None = None, **extra: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"id": f"{source}->{target}", "source": source, "target": target}
    if handle:
        result["sourceHandle"] = handle
    if condition:
        result["data"] = {"condition": condition}
    result.update(extra)
    return result


def make_workflow(runtime: WorkerRuntime, nodes: list[dict[str, Any]],
                  edges: list[dict[str, Any]], configuration: dict[str, Any] | None = None,
                  is_active: bool = True) -> uuid.UUID:
    with transaction(runtime.session_factory) as session:
        workflow = Workflow(name=f"test-{uuid.uuid4().hex[:8]}",
                            workflow_data={"nodes": nodes, "edges": edges},
                            configuration=configuration or {}, is_active=is_active)
        session.add(workflow)
        session.flush()
        return workflow.id


def start(runtime: WorkerRuntime, workflow_id: uuid.UUID, input: Any = None,
          priority: str = "normal", idempotency_key: str | None = None,
          fast_path: bool = False) -> uuid.UUID:
    """Create the instance, commit, then admit and dispatch.

    `fast_path` admits the way the API's execute does (`admit_new`); otherwise a full
    admission pass runs, as triggers and the reconciler do.
    """
    with transaction(runtime.session_factory) as session:
        workflow = session.get(Workflow, workflow_id)
        assert workflow is not None
        instance, _ = create_instance(session, workflow, input or {}, priority,
                                      idempotency_key, "test", None)
        instance_id, version_id = instance.id, instance.workflow_version_id
    if fast_path:
        admit_new(runtime, instance_id, version_id)
    else:
        admit_and_dispatch(runtime)
    return instance_id


def instance_row(runtime: WorkerRuntime, instance_id: uuid.UUID) -> WorkflowInstance:
    with runtime.session_factory() as session:
        row = session.get(WorkflowInstance, instance_id)
        assert row is not None
        return row


def steps(runtime: WorkerRuntime, instance_id: uuid.UUID) -> dict[str, WorkflowExecution]:
    with runtime.session_factory() as session:
        rows = session.execute(
            select(WorkflowExecution).where(WorkflowExecution.instance_id == instance_id)
        ).scalars().all()
        return {row.node_id: row for row in rows}


def wait_status(runtime: WorkerRuntime, instance_id: uuid.UUID,
                statuses: tuple[str, ...] = FINAL, timeout: float = 60.0) -> WorkflowInstance:
    def done() -> WorkflowInstance | None:
        row = instance_row(runtime, instance_id)
        return row if row.status in statuses else None

    return wait_until(done, timeout, interval=0.05,
                      message=f"instance {instance_id} to reach {statuses}")
