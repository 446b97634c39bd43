"""The step shell: claim -> run the handler -> record (fenced) -> plan -> commit -> dispatch.

A pure step (no side effect, `NodeType.pure`) runs first instead, then is claimed and
recorded in one transaction.

Owns the life of one step delivery and `finish_waiting_step`, the door through which
approvals, subworkflows and timers resume a held step. Handlers run outside any
transaction; every write is a conditional UPDATE fenced by the claimed attempt, so a
duplicate or late delivery changes nothing. Must not import Flask.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from kombu.exceptions import OperationalError as BrokerUnreachable
from sqlalchemy.orm import Session

from engine.backoff import retry_delay_seconds
from engine.statuses import InstanceStatus, StepStatus
from models.db import Executor
from models.driver_sql import explicit_transaction
from models.instances import WAITING_FOR_A_PASS, lock_instance, lock_instance_row
from models.steps import (
    ClaimedStep,
    StepRef,
    UnclaimedRun,
    claim_expected_step,
    claim_step,
    finish_step,
    schedule_retry,
    start_timer,
    wait_for_approval,
)
from worker.planning import advance, complete_and_advance, complete_starting_successors
from worker.results import NodeResult, Suspend
from worker.runtime import WorkerRuntime
from worker.step_run import (
    ExpectedNode,
    PreparedStep,
    StepFailure,
    config_without_reads,
    is_pure,
    prepare_step,
    prepared_after_claim,
    run_handler,
)

log = structlog.get_logger("flowyard.orchestrator")

# Retry backoff up to this many seconds rides on a Celery countdown; longer ones are
# database timers fired by the reconciler (Redis re-delivers long ETA messages).
COUNTDOWN_LIMIT_SECONDS = 3.0
COUNTDOWN_MARGIN_SECONDS = 0.1


@dataclass(frozen=True)
class AfterCommit:
    """Work to do once the transaction committed: send steps, maybe admit the next instances."""

    dispatch: list[StepRef]
    countdown: list[tuple[StepRef, float]]
    instance_ended: bool
    # When an instance ended: whether a pending one needs an admission pass, if read with
    # the commit (`models.instances.WAITING_FOR_A_PASS`); None: read it after.
    pass_needed: bool | None = None


NOTHING = AfterCommit([], [], False)


def execute_step(runtime: WorkerRuntime, execution_id: uuid.UUID, task_id: str | None,
                 expected: ExpectedNode | None = None) -> str:
    """Run one delivery of a step; returns what happened (for logs and tests).

    `expected`: what the task message says of the step, if anything. A step whose config
    reads nothing is then claimed at once; otherwise (or if the claim refuses) its delivery
    reads first, then claims. A pure step is read, run, then claimed and recorded together.
    """
    # Single statements on one connection, no BEGIN or COMMIT.
    with runtime.autocommit() as connection:
        claim = _claim_without_reading(runtime, connection, execution_id, task_id, expected)
        unclaimed = None
        if claim is None:
            prepared = prepare_step(runtime, connection, execution_id)
            if prepared is not None and prepared.runs_before_claim:
                unclaimed = prepared
            elif prepared is not None:
                claim = _claim_prepared(runtime, connection, execution_id, task_id, prepared)
    if unclaimed is not None:
        return _run_unclaimed(runtime, task_id, unclaimed)
    if claim is None:
        return _stale(execution_id)
    claimed, prepared = claim
    leases = runtime.lease_keeper()
    leases.hold(claimed.id, claimed.attempt)
    try:
        outcome = run_handler(runtime, claimed, prepared)
    finally:
        leases.release(claimed.id)
    return _record_and_send(runtime, claimed, outcome)


def _record_and_send(runtime: WorkerRuntime, claimed: ClaimedStep, outcome: Any) -> str:
    apply_after_commit(runtime, record_outcome(runtime, claimed, outcome))
    return _done(claimed, outcome)


def _done(step: ClaimedStep, outcome: Any) -> str:
    log.info("step.done", instance_id=str(step.instance_id), node_id=step.node_id,
             attempt=step.attempt, outcome=type(outcome).__name__)
    return type(outcome).__name__


def _stale(execution_id: uuid.UUID) -> str:
    log.info("step.stale_delivery", execution_id=str(execution_id))
    return "stale"


def _run_unclaimed(runtime: WorkerRuntime, task_id: str | None, prepared: PreparedStep) -> str:
    """A pure step: run its handler first, then claim and complete it in one transaction.

    No lease is held: the step is never `running`. The completion is fenced like a claim
    (due, pending at the attempt read, instance running), so a duplicate delivery, or one
    that lost a race, changes nothing. A failed run takes the ordinary path: claimed, then
    recorded as any step's failure (a pure handler would only fail the same way again).
    """
    step = prepared.next_attempt
    assert step is not None
    outcome = run_handler(runtime, step, prepared)
    if isinstance(outcome, (StepFailure, Suspend)):
        with runtime.autocommit() as connection:
            claim = _claim_prepared(runtime, connection, step.id, task_id, prepared)
        return _stale(step.id) if claim is None else _record_and_send(runtime, claim[0], outcome)
    after = _record_result(runtime, step, outcome, UnclaimedRun(task_id, _input_record(prepared)))
    if after is None:
        return _stale(step.id)
    apply_after_commit(runtime, after)
    return _done(step, outcome)


def _claim_without_reading(runtime: WorkerRuntime, connection: Executor,
                           execution_id: uuid.UUID, task_id: str | None,
                           expected: ExpectedNode | None,
                           ) -> tuple[ClaimedStep, PreparedStep] | None:
    """One round trip, when the message names the node and its config reads nothing.

    Not for a pure type: its delivery reads, then claims and completes in one transaction.
    """
    if expected is None or is_pure(runtime.node_types.get(expected.step_type)):
        return None
    config = config_without_reads(runtime, connection, expected)
    if config is None:
        return None
    answer = claim_expected_step(connection, execution_id, expected.node_id,
                                 expected.workflow_version_id,
                                 runtime.settings.step_lease_seconds, task_id,
                                 input_data=config)
    if answer is None:
        return None
    claimed, instance = answer
    return claimed, prepared_after_claim(runtime, claimed, instance, config)


def _claim_prepared(runtime: WorkerRuntime, connection: Executor, execution_id: uuid.UUID,
                    task_id: str | None,
                    prepared: PreparedStep) -> tuple[ClaimedStep, PreparedStep] | None:
    """Claim a step read and rendered before (`prepare_step`)."""
    claimed = claim_step(connection, execution_id, runtime.settings.step_lease_seconds,
                         task_id, input_data=_input_record(prepared))
    return None if claimed is None else (claimed, prepared)


def _input_record(prepared: PreparedStep) -> Any:
    """The attempt's rendered config as recorded: secret references stay references."""
    return prepared.rendered if isinstance(prepared.rendered, dict) else None


def record_outcome(runtime: WorkerRuntime, claimed: ClaimedStep, outcome: Any) -> AfterCommit:
    """Write the attempt's result (fenced by attempt) and plan, in one transaction."""
    if not isinstance(outcome, (Suspend, StepFailure)):
        after = _record_result(runtime, claimed, outcome)
        if after is None:
            log.warning("step.superseded", execution_id=str(claimed.id),
                        attempt=claimed.attempt)
            return NOTHING
        return after
    # A Core connection, not an ORM session: this runs once per step, and only finishing
    # an instance needs entities (planning opens a session on this transaction for it).
    with runtime.engine.begin() as connection:
        instance = lock_instance_row(connection, claimed.instance_id)
        if instance is None:
            return NOTHING
        if isinstance(outcome, StepFailure):
            return _record_failure(connection, runtime, instance, claimed, outcome)
        _suspend(connection, claimed, outcome)
        return NOTHING


def _record_result(runtime: WorkerRuntime, claimed: ClaimedStep, outcome: Any,
                   unclaimed: UnclaimedRun | None = None) -> AfterCommit | None:
    """Complete the step with the handler's result and plan: in one round trip when its
    result alone decides its successors (`complete_starting_successors`), else in one
    transaction that plans.

    None when the step was not as the write expected it (nothing changed).
    """
    result = outcome if isinstance(outcome, NodeResult) else NodeResult(outcome)
    advanced = complete_starting_successors(runtime, claimed, result.output, result.handle,
                                            unclaimed)
    if advanced is not None:
        return AfterCommit(advanced.dispatch, [], advanced.finished)
    with runtime.autocommit() as connection, explicit_transaction(connection) as transaction:
        advanced = complete_and_advance(transaction.connection, runtime, claimed,
                                        result.output, result.handle, unclaimed)
        if advanced is not None and advanced.finished:
            # The end's admission check, sent with the COMMIT it must follow.
            transaction.read_after_commit(WAITING_FOR_A_PASS, {})
    if advanced is None:
        return None
    waiting = transaction.rows_after_commit
    return AfterCommit(advanced.dispatch, [], advanced.finished,
                       pass_needed=bool(waiting[0][0]) if waiting else None)


def _suspend(session: Executor, claimed: ClaimedStep, outcome: Suspend) -> None:
    if outcome.timer_seconds is not None:
        start_timer(session, claimed.id, claimed.attempt, outcome.timer_seconds, outcome.output)
    else:
        wait_for_approval(session, claimed.id, claimed.attempt, outcome.output)


def _record_failure(session: Executor, runtime: WorkerRuntime, instance: Any,
                    claimed: ClaimedStep, failure: StepFailure) -> AfterCommit:
    if not failure.permanent and claimed.retry_count < claimed.max_retries:
        delay = _backoff(session, runtime, instance, claimed)
        soon = delay <= COUNTDOWN_LIMIT_SECONDS
        if not schedule_retry(session, claimed.id, claimed.attempt, delay, failure.message, soon):
            return NOTHING
        ref = StepRef(claimed.id, claimed.instance_id, claimed.node_id, claimed.step_type)
        return AfterCommit([], [(ref, delay)] if soon else [], False)
    graph, _ = runtime.graphs.get(session, instance.workflow_version_id)
    node = graph.node(claimed.node_id)
    has_error_edges = any(edge.source_handle == "error" for edge in graph.outgoing(node.id))
    if node.on_error == "continue" and not has_error_edges:
        done = finish_step(session, claimed.id, expected_status=StepStatus.RUNNING.value,
                           new_status=StepStatus.COMPLETED.value,
                           output={"error": failure.message}, handle=None,
                           error=failure.message, attempt=claimed.attempt)
    else:
        done = finish_step(session, claimed.id, expected_status=StepStatus.RUNNING.value,
                           new_status=StepStatus.FAILED.value, output=None,
                           handle="error" if has_error_edges else None,
                           error=failure.message, attempt=claimed.attempt)
    if not done:
        log.warning("step.superseded", execution_id=str(claimed.id), attempt=claimed.attempt)
        return NOTHING
    return _advance(session, runtime, instance)


def _backoff(session: Executor, runtime: WorkerRuntime, instance: Any,
             claimed: ClaimedStep) -> float:
    """The node's first delay doubled per retry so far, capped (CONTRACT §1)."""
    graph, _ = runtime.graphs.get(session, instance.workflow_version_id)
    first_delay = graph.node(claimed.node_id).retry_backoff_seconds
    return retry_delay_seconds(first_delay, claimed.retry_count + 1)


def _advance(session: Executor, runtime: WorkerRuntime, instance: Any,
             completed_node: str | None = None) -> AfterCommit:
    result = advance(session, runtime, instance, completed_node)
    return AfterCommit(result.dispatch, [], result.finished)


def apply_after_commit(runtime: WorkerRuntime, after: AfterCommit) -> None:
    """Send what the committed transaction decided; free slots go to pending instances.

    Steps a broker that cannot be reached refused are logged, not raised: the reconciler
    sends them later.
    """
    refs = after.dispatch + [ref for ref, _ in after.countdown]
    if refs and runtime.celery is not None:
        try:
            _send(runtime, after, refs)
        except BrokerUnreachable as error:
            # Committed, so nothing is lost: the reconciler re-sends pending steps no worker
            # claimed (`redispatch_unclaimed`). The work that decided them stands, and an
            # API call that did it answers as done, not with an error a client would retry.
            log.warning("dispatch.broker_unreachable", steps=len(refs), error=str(error),
                        resent_by="the reconciler, after twice the step lease")
    if after.instance_ended:
        from worker.admission import admit_and_dispatch, admit_if_waiting

        if after.pass_needed is None:
            admit_if_waiting(runtime)
        elif after.pass_needed:
            admit_and_dispatch(runtime)


def _send(runtime: WorkerRuntime, after: AfterCommit, refs: list[StepRef]) -> None:
    from worker.dispatch import send_steps, step_timeouts

    timeouts = {ref.id: ref.timeout_seconds for ref in refs if ref.timeout_seconds is not None}
    unknown = [ref for ref in refs if ref.timeout_seconds is None]
    if unknown:
        with runtime.session_factory() as session:
            timeouts.update(step_timeouts(session, runtime.graphs, runtime.settings, unknown))
    send_steps(runtime.celery, runtime.node_types, after.dispatch, timeouts)
    for ref, delay in after.countdown:
        # Arrive just after run_after (database clock), or the claim would refuse it.
        send_steps(runtime.celery, runtime.node_types, [ref], timeouts,
                   countdown=delay + COUNTDOWN_MARGIN_SECONDS)


def finish_waiting_step(
    session: Session,
    runtime: WorkerRuntime,
    execution_id: uuid.UUID,
    output: Any,
    handle: str | None = None,
    failed_error: str | None = None,
) -> AfterCommit | None:
    """Complete (or fail) a step held in `waiting_approval` or on a timer, then plan.

    For approvals, subworkflows and the reconciler's timers. Runs in the caller's
    transaction (never commits); pass the result to `apply_after_commit` after commit.
    Returns None when the step was not waiting (already finished: nothing changed).
    """
    from models.instance import WorkflowExecution

    step = session.get(WorkflowExecution, execution_id, populate_existing=True)
    if step is None:
        return None
    instance = lock_instance(session, step.instance_id)
    if instance is None or instance.status in _ENDED:
        return None
    expected = step.status
    if expected not in (StepStatus.WAITING_APPROVAL.value, StepStatus.RUNNING.value):
        return None
    if expected == StepStatus.RUNNING.value and step.run_after is None:
        return None  # a worker holds it: not a held step
    new_status = StepStatus.FAILED.value if failed_error else StepStatus.COMPLETED.value
    if failed_error:
        graph, _ = runtime.graphs.get(session, instance.workflow_version_id)  # type: ignore[arg-type]
        if any(edge.source_handle == "error" for edge in graph.outgoing(step.node_id)):
            handle = "error"
    if not finish_step(session, execution_id, expected_status=expected, new_status=new_status,
                       output=output, handle=handle, error=failed_error,
                       attempt=step.attempt):
        return None
    return _advance(session, runtime, instance)


_ENDED = frozenset(s.value for s in (InstanceStatus.COMPLETED, InstanceStatus.FAILED,
                                     InstanceStatus.CANCELLED))
