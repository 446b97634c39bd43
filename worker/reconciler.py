"""The reconciler: periodic repair of everything commit-then-dispatch can leave behind.

Each pass (several schedulers may run at once; every write is conditional):
re-sends ready-but-unclaimed steps and due retry timers, releases or fails steps whose
lease expired, completes due delay timers, fails instances past their deadline, admits
pending instances, and replans running instances that have nothing in flight. Other
engineers add periodic jobs (approval expiry, schedules) to `PeriodicJobs`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from engine.statuses import InstanceStatus, StepStatus
from models.db import transaction
from models.instances import idle_running_instances, lock_instance, timed_out_instances
from models.step_recovery import (
    due_timers,
    due_unclaimed_steps,
    expired_leases,
    release_lost_step,
    stop_open_steps,
)
from models.steps import finish_step
from worker.admission import admit_and_dispatch
from worker.nodes.subworkflow import cancel_orphaned_children, resume_subworkflow_steps
from worker.notifications.notices import notify_instance_finished
from worker.notifications.tasks import periodic_jobs as notification_jobs
from worker.orchestrator import AfterCommit, apply_after_commit, finish_waiting_step
from worker.planning import advance, execution_metrics
from worker.runtime import WorkerRuntime
from worker.schedules import fire_schedules_job

if TYPE_CHECKING:
    # By name only: worker processes import this module, and prometheus-client must not be
    # imported there before `flowyard worker` names its multiprocess directory.
    from worker.reconciler_metrics import ReconcilerMetrics

log = structlog.get_logger("flowyard.reconciler")

PeriodicJob = Callable[[WorkerRuntime], object]


@dataclass
class PeriodicJobs:
    """The jobs one reconciler pass runs, in order; append yours at start-up."""

    jobs: list[tuple[str, PeriodicJob]] = field(default_factory=list)

    def add(self, name: str, job: PeriodicJob) -> None:
        self.jobs.append((name, job))


def redispatch_unclaimed(runtime: WorkerRuntime) -> int:
    after = runtime.settings.step_lease_seconds * 2
    with transaction(runtime.session_factory) as session:
        refs = due_unclaimed_steps(session, after)
    if refs:
        apply_after_commit(runtime, AfterCommit(refs, [], False))
    return len(refs)


def expire_leases(runtime: WorkerRuntime) -> int:
    """A step whose worker died goes back to pending, or fails after too many deliveries."""
    settings = runtime.settings
    with runtime.session_factory() as session:
        lost = expired_leases(session, settings.step_lease_seconds)
    for execution_id, instance_id, attempt in lost:
        after = _release_or_fail(runtime, execution_id, instance_id, attempt)
        apply_after_commit(runtime, after)
    return len(lost)


def _release_or_fail(runtime: WorkerRuntime, execution_id: uuid.UUID,
                     instance_id: uuid.UUID, attempt: int) -> AfterCommit:
    with transaction(runtime.session_factory) as session:
        instance = lock_instance(session, instance_id)
        if instance is None:
            return AfterCommit([], [], False)
        if attempt < runtime.settings.max_delivery_attempts:
            release_lost_step(session, execution_id, attempt)
            return AfterCommit([], [], False)
        message = f"the step lost its worker {attempt} times"
        if not finish_step(session, execution_id, expected_status=StepStatus.RUNNING.value,
                           new_status=StepStatus.FAILED.value, output=None, handle=None,
                           error=message, attempt=attempt):
            return AfterCommit([], [], False)
        result = advance(session, runtime, instance)
        return AfterCommit(result.dispatch, [], result.finished)


def fire_timers(runtime: WorkerRuntime) -> int:
    with runtime.session_factory() as session:
        due = due_timers(session)
    for execution_id, _ in due:
        with transaction(runtime.session_factory) as session:
            from models.instance import WorkflowExecution

            step = session.get(WorkflowExecution, execution_id)
            output = step.output_data if step is not None else None
            after = finish_waiting_step(session, runtime, execution_id, output)
        if after is not None:
            apply_after_commit(runtime, after)
    return len(due)


def enforce_deadlines(runtime: WorkerRuntime) -> int:
    with runtime.session_factory() as session:
        late = timed_out_instances(session)
    revoke: list[str] = []
    for instance_id in late:
        with transaction(runtime.session_factory) as session:
            instance = lock_instance(session, instance_id)
            if instance is None or instance.status not in ("running", "paused"):
                continue
            from sqlalchemy import func, select

            from models.instances import steps_of

            revoke.extend(stop_open_steps(session, instance.id, "instance timed out"))
            instance.status = InstanceStatus.FAILED.value
            instance.completed_at = session.execute(select(func.now())).scalar_one()
            instance.error_details = "workflow execution timed out (execution_timeout_ms)"
            steps = steps_of(session, instance.id)
            instance.execution_metrics = execution_metrics(instance, steps)
            if instance.workflow_version_id is not None:
                _, configuration = runtime.graphs.get(session, instance.workflow_version_id)
                notify_instance_finished(session, instance, configuration, steps)
    if revoke and runtime.celery is not None:
        runtime.celery.control.revoke(revoke)
    return len(late)


def replan_idle(runtime: WorkerRuntime) -> int:
    """No instance stays running with nothing in flight: plan it again (it finishes or moves)."""
    with runtime.session_factory() as session:
        idle = idle_running_instances(session)
    for instance_id in idle:
        with transaction(runtime.session_factory) as session:
            instance = lock_instance(session, instance_id)
            if instance is None or instance.status != InstanceStatus.RUNNING.value:
                continue
            result = advance(session, runtime, instance)
            if not result.finished and not result.dispatch:
                # Nothing can ever move: fail loudly rather than hang.
                instance.status = InstanceStatus.FAILED.value
                instance.error_details = "no step can run and the workflow did not finish"
        apply_after_commit(runtime, AfterCommit(result.dispatch, [], result.finished))
    return len(idle)


def default_jobs() -> PeriodicJobs:
    jobs = PeriodicJobs()
    jobs.add("expire_leases", expire_leases)
    jobs.add("fire_timers", fire_timers)
    jobs.add("enforce_deadlines", enforce_deadlines)
    jobs.add("redispatch_unclaimed", redispatch_unclaimed)
    jobs.add("replan_idle", replan_idle)
    # Schedules fire before admission so a fired instance starts in the same pass.
    jobs.add("schedules", fire_schedules_job)
    jobs.add("resume_subworkflow_steps", resume_subworkflow_steps)
    jobs.add("cancel_orphaned_children", cancel_orphaned_children)
    jobs.add("admit", admit_and_dispatch)
    for name, job in notification_jobs():
        jobs.add(name, job)
    return jobs


def reconcile_once(runtime: WorkerRuntime, jobs: PeriodicJobs,
                   metrics: ReconcilerMetrics | None = None) -> None:
    """One pass; a failing job is logged and the others still run. Each job's result, and
    the pass's time, are counted in `metrics`, if given."""
    started = time.perf_counter()
    for name, job in jobs.jobs:
        try:
            result = job(runtime)
        except Exception:  # one broken job must not stop the repair of everything else
            log.exception("reconciler.job_failed", job=name)
            if metrics is not None:
                metrics.job_failed(name)
        else:
            if metrics is not None:
                metrics.job_done(name, result)
    if metrics is not None:
        metrics.pass_done(time.perf_counter() - started)


def run_forever(runtime: WorkerRuntime, jobs: PeriodicJobs, stop: threading.Event,
                after_pass: Callable[[], None] | None = None,
                metrics: ReconcilerMetrics | None = None) -> None:
    """Reconcile until `stop`; `after_pass` runs after each pass (the liveness heartbeat)."""
    interval = runtime.settings.reconcile_interval_seconds
    while not stop.is_set():
        reconcile_once(runtime, jobs, metrics)
        if after_pass is not None:
            after_pass()
        stop.wait(interval)
