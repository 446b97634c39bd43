"""The Celery app factory: settings in, an app with one task per node type out; no module app.

Each node type is the task `flowyard.node.<type>` on queue `<type>` (or the type's own
queue). Only ids travel through Redis (the step's, and its node's and workflow version's
as keyword arguments); the task claims the step in PostgreSQL.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from celery import Celery, current_task
from celery.signals import worker_before_create_process, worker_process_init

from models.settings import Settings
from worker.broker import transport_for
from worker.dispatch import queue_of, task_name
from worker.heap import freeze_startup_heap
from worker.notifications.tasks import register_notification_tasks
from worker.orchestrator import execute_step
from worker.runtime import WorkerRuntime, build_runtime
from worker.step_run import expected_node

if TYPE_CHECKING:
    # Imported by name only: importing prometheus-client here would fix its mode before
    # `flowyard worker` names the multiprocess directory (`worker.metrics`).
    from worker.metrics import StepMetrics

# Redis re-delivers an unacked message after this long; it must exceed the longest step.
MIN_VISIBILITY_TIMEOUT_SECONDS = 3600


def celery_config(settings: Settings) -> dict[str, Any]:
    broker = settings.require_broker_url()
    visibility = max(MIN_VISIBILITY_TIMEOUT_SECONDS, settings.default_step_timeout_seconds * 4)
    # Task events feed Flower. Sending them costs the worker more CPU than a noop step, so
    # by default workers start without them and Flower switches them on while it watches
    # (its enable_events broadcast); "always" also adds the producer's task-sent event.
    always_events = settings.task_events == "always"
    return {
        "broker_url": broker,
        "broker_transport": transport_for(broker),
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_send_task_events": always_events,
        "task_send_sent_event": always_events,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        "broker_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "enable_utc": True,
        "timezone": "UTC",
    }


def make_celery(settings: Settings, runtime: WorkerRuntime | None = None,
                step_metrics: StepMetrics | None = None) -> Celery:
    """A Celery app whose tasks run steps through `runtime` (built from settings if absent),
    each counted in `step_metrics`, if given."""
    if runtime is None:
        runtime = build_runtime(settings)
    app = Celery("flowyard", set_as_current=False)
    app.conf.update(celery_config(settings))
    runtime.celery = app
    routes: dict[str, dict[str, str]] = {}
    for name in runtime.node_types:
        _register_node_task(app, runtime, name, step_metrics)
        routes[task_name(name)] = {"queue": queue_of(runtime.node_types, name)}
    app.conf.task_routes = routes
    app.conf.task_default_queue = "default"
    register_notification_tasks(app, runtime)
    _dispose_pool_in_children(runtime)
    _freeze_heap_before_forks()
    app.flowyard_runtime = runtime  # type: ignore[attr-defined]
    return app


def _register_node_task(app: Celery, runtime: WorkerRuntime, type_name: str,
                        step_metrics: StepMetrics | None) -> None:
    def execute(execution_id: str, node_id: str | None, version_id: str | None) -> str:
        task_id = current_task.request.id if current_task else None
        return execute_step(runtime, uuid.UUID(execution_id), task_id,
                            expected_node(type_name, node_id, version_id))

    def run_node(execution_id: str, node_id: str | None = None,
                 version_id: str | None = None) -> str:
        if step_metrics is None:
            return execute(execution_id, node_id, version_id)
        started = time.perf_counter()
        happened = None
        try:
            happened = execute(execution_id, node_id, version_id)
            return happened
        finally:
            step_metrics.observe(type_name, happened, time.perf_counter() - started)

    run_node.__name__ = f"run_{type_name}"
    # Not shared: a shared task joins every Celery app the process makes later, ahead of
    # that app's own, so a second app would run steps through the first one's runtime.
    app.task(name=task_name(type_name), bind=False, acks_late=True, shared=False,
             reject_on_worker_lost=True, ignore_result=True)(run_node)


def _dispose_pool_in_children(runtime: WorkerRuntime) -> None:
    def dispose(**_: Any) -> None:
        # Connections inherited over fork() must never be used by the child.
        runtime.engine.dispose(close=False)

    worker_process_init.connect(dispose, weak=False)


def _freeze_heap_before_forks() -> None:
    """In the pool's parent, just before each child is forked: neither the parent's full
    collections nor the child's walk the heap both start with (`freeze_startup_heap`). A
    child forked later, to replace one, freezes what the parent holds then too: little."""
    worker_before_create_process.connect(_freeze_before_fork, weak=False,
                                         dispatch_uid="flowyard.freeze_startup_heap")


def _freeze_before_fork(**_: Any) -> None:
    freeze_startup_heap()
