"""Execution endpoints: execute, instance list/read/details, live events, control (CONTRACT §4, §7).

Reads need viewer; execute and control need operator. The API reaches the worker side for
launch, admission and control only; every state change is decided in PostgreSQL and sent
to the queues after commit. Must not run steps itself.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Response, stream_with_context
from flask.views import MethodView
from sqlalchemy import Connection, select
from sqlalchemy.orm import defer
from sqlalchemy.orm.attributes import set_committed_value

from api.after_commit import after_commit
from api.audit import (
    audit_entry,
    audit_written_with_work,
    clear_audit_resource,
    set_audit_resource,
)
from api.auth import require_role
from api.blueprint import Blueprint
from api.context import app_state, request_connection, request_session, worker_runtime
from api.errors import ConflictError, NotFoundError
from api.pagination import page_schema, paginate
from api.schemas.instances import (
    ExecuteSchema,
    InstanceDetailsSchema,
    InstanceListArgsSchema,
    InstanceSchema,
)
from api.stream_slots import stream_slots
from models.approval import WorkflowApproval, WorkflowNotification
from models.instance import WorkflowExecution, WorkflowInstance
from models.instances import StartedInstance, steps_of
from models.workflow import Workflow
from worker.gateway import (
    DirectLaunch,
    InactiveWorkflowError,
    WorkerRuntime,
    admit_new,
    after_direct_launch,
    after_new,
    control,
    create_instance,
    decide_new,
    launch_directly,
)

blp = Blueprint("instances", __name__, url_prefix="/api",
                description="Workflow execution: start, monitor and control instances")

# Server-sent events: how often the stream polls the database, and how long it may stay open.
EVENT_POLL_SECONDS = 0.5
EVENT_STREAM_MAX_SECONDS = 3600.0
# A stream with nothing new writes a comment this often. A watcher that went away is only
# noticed when a write to it fails: without these, its stream would hold its slot and thread
# until the instance ends (api.stream_slots). Proxies keep such a connection open, too.
EVENT_HEARTBEAT_SECONDS = 5.0
_FINAL = ("completed", "failed", "cancelled")


def get_instance(session: Any, instance_id: uuid.UUID) -> WorkflowInstance:
    """Raises: NotFoundError."""
    instance: WorkflowInstance | None = session.get(WorkflowInstance, instance_id)
    if instance is None:
        raise NotFoundError(f"no workflow instance {instance_id}")
    return instance


# The definition itself is read only if the workflow has no pinned version yet.
_WORKFLOW_HEADER = [defer(Workflow.workflow_data), defer(Workflow.configuration)]


@blp.route("/workflows/<uuid:workflow_id>/execute")
class Execute(MethodView):
    @require_role("operator")
    @blp.arguments(ExecuteSchema)
    @blp.response(202, InstanceSchema)
    @blp.alt_response(200, schema=InstanceSchema, description="The instance first started "
                      "with this idempotency key (nothing new started)")
    def post(self, body: dict[str, Any], workflow_id: uuid.UUID) -> Any:
        """Start an instance (202); a repeated idempotency key answers its first one (200)."""
        runtime = worker_runtime()
        key = body.get("idempotency_key")
        connection = request_connection()
        direct = (_launch_directly(runtime, connection, workflow_id, body)
                  if connection is not None and not key else None)
        if direct is not None:
            return after_commit(f"launch of instance {direct.instance.id}",
                                lambda: _direct_answer(runtime, direct), direct.instance), 202
        # A key to look up, or a workflow that is unknown, inactive or never ran.
        session = request_session()
        instance, created = _create_instance(session, workflow_id, body, key)
        # Its start is decided in the transaction that creates it: one commit, not two.
        admission = (decide_new(session.connection(), runtime, instance.id,
                                instance.workflow_version_id)
                     if created and instance.workflow_version_id is not None else None)
        session.commit()
        set_audit_resource("workflow-instances", instance.id,
                           {"workflow_id": str(workflow_id), "created": created})
        if created:
            # Answered as committed if the database fails after the commit (api.after_commit).
            instance = after_commit(f"launch of instance {instance.id}", lambda: _general_answer(
                runtime, session, instance, admission), instance)
        return instance, 202 if created else 200


def _direct_answer(runtime: WorkerRuntime, direct: DirectLaunch) -> WorkflowInstance:
    after_direct_launch(runtime, direct)
    # One that did not start: the admission pass just run may have started it.
    return (direct.instance if direct.started
            else get_instance(request_session(), direct.instance.id))


def _general_answer(runtime: WorkerRuntime, session: Any, instance: WorkflowInstance,
                    admission: Any) -> WorkflowInstance:
    started = (after_new(runtime, admission) if admission is not None
               else admit_new(runtime, instance.id, instance.workflow_version_id))
    if started is not None:
        _show_started(instance, started)
        return instance
    return _read_again(session, instance)


def _read_again(session: Any, instance: WorkflowInstance) -> WorkflowInstance:
    """`instance` as stored now; as it was, should it be gone.

    Not `refresh`: it expires the entity before it reads, and a read that fails would leave
    nothing to answer with (`api.after_commit`).
    """
    read = session.get(WorkflowInstance, instance.id, populate_existing=True)
    return read if read is not None else instance


def _launch_directly(runtime: WorkerRuntime, connection: Connection, workflow_id: uuid.UUID,
                     body: dict[str, Any]) -> DirectLaunch | None:
    """`launch_directly`, the call's audit row written with the launch (one commit)."""
    instance_id = uuid.uuid4()
    set_audit_resource("workflow-instances", instance_id,
                       {"workflow_id": str(workflow_id), "created": True})
    direct: DirectLaunch | None = None
    try:
        direct = launch_directly(runtime, connection, workflow_id, body["input"],
                                 body["priority"], "manual", "api", instance_id=instance_id,
                                 audit_entry=audit_entry(202))
    finally:
        if direct is None:
            # Nothing was written: the general path names what it does, or the call fails.
            clear_audit_resource()
    if direct is not None:
        audit_written_with_work()
    return direct


def _create_instance(session: Any, workflow_id: uuid.UUID, body: dict[str, Any],
                     key: str | None) -> tuple[WorkflowInstance, bool]:
    """Raises: NotFoundError, ConflictError (an inactive workflow)."""
    workflow = session.get(Workflow, workflow_id, options=_WORKFLOW_HEADER)
    if workflow is None:
        raise NotFoundError(f"no workflow {workflow_id}")
    try:
        created: tuple[WorkflowInstance, bool] = create_instance(
            session, workflow, body["input"], body["priority"], key, "manual", "api")
    except InactiveWorkflowError as error:
        raise ConflictError(str(error)) from None
    return created


def _show_started(instance: WorkflowInstance, started: StartedInstance) -> None:
    """What the start wrote, set on the entity as if read (no re-read, and nothing to flush)."""
    for name in ("started_at", "deadline_at", "updated_at"):
        set_committed_value(instance, name, getattr(started, name))
    set_committed_value(instance, "status", started.row.status)
    set_committed_value(instance, "paused_at", None)


@blp.route("/workflow-instances")
class Instances(MethodView):
    @require_role("viewer")
    @blp.arguments(InstanceListArgsSchema, location="query")
    @blp.response(200, page_schema(InstanceSchema))
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List instances, newest first; filter by workflow_id and status."""
        statement = select(WorkflowInstance)
        if "workflow_id" in args:
            statement = statement.where(WorkflowInstance.workflow_id == args["workflow_id"])
        if "status" in args:
            statement = statement.where(WorkflowInstance.status == args["status"])
        return paginate(request_session(), statement, limit=args["limit"],
                        offset=args["offset"],
                        newest_first=(WorkflowInstance.created_at.desc(),
                                      WorkflowInstance.id.desc()))


@blp.route("/workflow-instances/<uuid:instance_id>")
class InstanceById(MethodView):
    @require_role("viewer")
    @blp.response(200, InstanceSchema)
    def get(self, instance_id: uuid.UUID) -> WorkflowInstance:
        """One instance: status, progress, current step, output, metrics."""
        return get_instance(request_session(), instance_id)


def instance_details(session: Any, instance: WorkflowInstance) -> dict[str, Any]:
    steps = steps_of(session, instance.id)
    step_ids = [step.id for step in steps]
    approvals = list(session.execute(
        select(WorkflowApproval).where(WorkflowApproval.execution_id.in_(step_ids))
        .order_by(WorkflowApproval.created_at)
    ).scalars()) if step_ids else []
    notifications = list(session.execute(
        select(WorkflowNotification).where(WorkflowNotification.instance_id == instance.id)
        .order_by(WorkflowNotification.created_at)
    ).scalars())
    data = {name: getattr(instance, name) for name in InstanceSchema().fields}
    return {**data, "steps": steps, "approvals": approvals, "notifications": notifications}


@blp.route("/workflow-instances/<uuid:instance_id>/details")
class InstanceDetails(MethodView):
    @require_role("viewer")
    @blp.response(200, InstanceDetailsSchema)
    def get(self, instance_id: uuid.UUID) -> dict[str, Any]:
        """The instance with its steps, approvals and notifications."""
        session = request_session()
        return instance_details(session, get_instance(session, instance_id))


def _snapshot(session: Any, instance_id: uuid.UUID) -> dict[str, Any] | None:
    instance = session.get(WorkflowInstance, instance_id, populate_existing=True)
    if instance is None:
        return None
    rows = session.execute(
        select(WorkflowExecution.node_id, WorkflowExecution.status)
        .where(WorkflowExecution.instance_id == instance_id)
    ).all()
    return {"id": str(instance.id), "status": instance.status, "progress": instance.progress,
            "current_step": instance.current_step, "error_details": instance.error_details,
            "steps": {node_id: status for node_id, status in rows}}


def event_stream(factory: Any, instance_id: uuid.UUID,
                 ending: threading.Event) -> Iterator[str]:
    """`status` events whenever the instance or a step changes; ends when it is final, or
    early, with a comment saying why, once `ending` is set (the server is stopping)."""
    last: dict[str, Any] | None = None
    deadline = time.monotonic() + EVENT_STREAM_MAX_SECONDS
    last_write = time.monotonic()
    while time.monotonic() < deadline:
        with factory() as session:
            current = _snapshot(session, instance_id)
        if current is None:
            return
        if current != last:
            yield f"event: status\ndata: {json.dumps(current)}\n\n"
            last, last_write = current, time.monotonic()
        elif time.monotonic() - last_write >= EVENT_HEARTBEAT_SECONDS:
            yield ": keep-alive\n\n"  # a comment: clients ignore it
            last_write = time.monotonic()
        if current["status"] in _FINAL:
            yield f"event: end\ndata: {json.dumps({'status': current['status']})}\n\n"
            return
        # The poll interval of a live stream (not a test wait), cut short by a stop.
        if ending.wait(EVENT_POLL_SECONDS):
            yield ": the server is stopping; reconnect to follow this instance\n\n"
            return


@blp.route("/workflow-instances/<uuid:instance_id>/events")
class InstanceEvents(MethodView):
    @require_role("viewer")
    @blp.doc(responses={
        200: {"description": "text/event-stream of `status` events"},
        503: {"description": "`too_many_streams`: this API process holds as many live "
                             "streams as it may (`Retry-After`)"}})
    def get(self, instance_id: uuid.UUID) -> Response:
        """Server-sent events: one `status` event per change, `end` when the instance ends.

        503 (`too_many_streams`) when this API process holds as many streams as it may. A
        server that stops ends its streams with an SSE comment saying so: reconnect.
        """
        get_instance(request_session(), instance_id)
        slots = stream_slots()
        give_back = slots.take()
        try:
            response = Response(stream_with_context(event_stream(
                                    app_state().session_factory, instance_id, slots.ending)),
                                mimetype="text/event-stream",
                                headers={"Cache-Control": "no-cache",
                                         "X-Accel-Buffering": "no"})
        except BaseException:
            give_back()
            raise
        # The server closes the body when the stream ends, fails to write or is cut short.
        response.call_on_close(give_back)
        return response


def _control(action: str, instance_id: uuid.UUID) -> WorkflowInstance:
    session = request_session()
    try:
        result = getattr(control, action)(session, instance_id)
    except control.InstanceNotFoundError as error:
        raise NotFoundError(str(error)) from None
    except control.TransitionError as error:
        raise ConflictError(str(error), details={"status": error.status}) from None
    session.commit()
    set_audit_resource("workflow-instances", instance_id, {"action": action})
    return after_commit(f"{action} of instance {instance_id}",
                        lambda: _after_control(session, result), result.instance)


def _after_control(session: Any, result: Any) -> WorkflowInstance:
    control.after_control(worker_runtime(), result)
    return _read_again(session, result.instance)


def _control_view(action: str, doc: str) -> type[MethodView]:
    class ControlView(MethodView):
        @require_role("operator")
        @blp.response(200, InstanceSchema)
        def post(self, instance_id: uuid.UUID) -> WorkflowInstance:
            return _control(action, instance_id)

    ControlView.post.__doc__ = doc
    ControlView.__name__ = f"Control{action.capitalize()}"
    return ControlView


_DOCS = {
    "pause": "running -> paused: running steps finish, nothing new starts (409 otherwise).",
    "resume": "paused -> running (subject to admission); held steps start (409 otherwise).",
    "cancel": "Any non-final status -> cancelled; running steps are revoked (409 if final).",
    "retry": "failed -> running: failed steps run again, completed keep outputs (409 "
             "otherwise).",
}

for _action in ("pause", "resume", "cancel"):
    blp.route(f"/workflow-executions/<uuid:instance_id>/{_action}",
              endpoint=f"executions_{_action}")(_control_view(_action, _DOCS[_action]))
for _action in ("pause", "resume", "cancel", "retry"):
    blp.route(f"/workflow-instances/<uuid:instance_id>/{_action}",
              endpoint=f"instances_{_action}")(_control_view(_action, _DOCS[_action]))
