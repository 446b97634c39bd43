"""Run one claimed step's handler: build its context, render/resolve its config, classify errors.

Runs outside any transaction (it opens short read sessions only) and never writes step
state: the orchestrator records what this returns. Secret values never leave this module
unredacted.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from engine.expressions import ExpressionError, expression_context, render_template_value
from engine.nodetypes import NodeConfigError
from models.db import transaction
from models.instance import WorkflowInstance
from models.instances import steps_of
from models.settings import Settings
from models.steps import ClaimedStep, record_input
from worker.errors import PermanentNodeError, StepTimeoutError
from worker.outbound import OutboundBlockedError
from worker.planning import instance_facts, instance_input, nodes_context
from worker.results import NodeResult, Suspend
from worker.runtime import WorkerRuntime
from worker.secret_resolution import SecretResolutionError, redact, redact_text, resolve_secrets

_PERMANENT = (PermanentNodeError, ExpressionError, OutboundBlockedError, SecretResolutionError,
              NodeConfigError)


@dataclass(frozen=True)
class StepFailure:
    message: str
    permanent: bool


@dataclass(frozen=True)
class StepContext:
    """What a handler may use besides its config (the second argument of `run`)."""

    step_id: uuid.UUID
    instance_id: uuid.UUID
    node_id: str
    attempt: int
    expressions: Mapping[str, Any]
    settings: Settings
    session_factory: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """`<step id>:<attempt>`, sent with every external side effect (CONTRACT §4.7)."""
        return f"{self.step_id}:{self.attempt}"

    @property
    def input(self) -> Any:
        return self.expressions.get("input")


def build_context(runtime: WorkerRuntime, claimed: ClaimedStep) -> tuple[StepContext, Any]:
    """The handler context and the node's raw config, read in one short session."""
    with runtime.session_factory() as session:
        instance = session.get(WorkflowInstance, claimed.instance_id)
        if instance is None or instance.workflow_version_id is None:
            raise PermanentNodeError("the instance or its workflow version is gone")
        graph, _ = runtime.graphs.get(session, instance.workflow_version_id)
        steps = [s for s in steps_of(session, claimed.instance_id)
                 if s.status in ("completed", "failed", "skipped")]
        expressions = expression_context(instance_input(instance), nodes_context(steps),
                                         instance_facts(instance))
    node = graph.node(claimed.node_id)
    context = StepContext(step_id=claimed.id, instance_id=claimed.instance_id,
                          node_id=claimed.node_id, attempt=claimed.attempt,
                          expressions=expressions, settings=runtime.settings,
                          session_factory=runtime.session_factory)
    return context, dict(node.config)


def _secret_lookup(runtime: WorkerRuntime) -> Any:
    from models.secret_store import read_secret_value

    def lookup(name: str) -> str:
        with runtime.session_factory() as session:
            return read_secret_value(session, runtime.settings, name)

    return lookup


def run_handler(runtime: WorkerRuntime, claimed: ClaimedStep) -> Any:
    """The handler's outcome, or a StepFailure whose message is free of secret values."""
    secret_values: frozenset[str] = frozenset()
    try:
        context, raw_config = build_context(runtime, claimed)
        node_type = runtime.node_types.get(claimed.step_type)
        if node_type is None:
            raise PermanentNodeError(f"node type {claimed.step_type!r} is not installed")
        rendered = _render(node_type, raw_config, context.expressions)
        resolved, secret_values = resolve_secrets(rendered, _secret_lookup(runtime))
        config = node_type.load_config(resolved)
        with transaction(runtime.session_factory) as session:
            record_input(session, claimed.id, claimed.attempt, redact(rendered, secret_values))
        outcome = node_type.run(config, context)
        return _redact_outcome(outcome, secret_values) if secret_values else outcome
    except SoftTimeLimitExceeded:
        error: Exception = StepTimeoutError("the step ran past its timeout_seconds")
        return StepFailure(str(error), permanent=False)
    except _PERMANENT as failure:
        return StepFailure(redact_text(_describe(failure), secret_values), permanent=True)
    except Exception as failure:  # any other handler error is worth another attempt
        return StepFailure(redact_text(_describe(failure), secret_values), permanent=False)


def _render(node_type: Any, config: dict[str, Any], expressions: Mapping[str, Any]) -> Any:
    """Render `{{ }}` templates, leaving the type's CEL expression fields as written."""
    raw_fields = set(getattr(node_type, "expression_fields", ()))
    return {key: value if key in raw_fields else render_template_value(value, expressions)
            for key, value in config.items()}


def _redact_outcome(outcome: Any, secret_values: frozenset[str]) -> Any:
    if isinstance(outcome, NodeResult):
        return NodeResult(redact(outcome.output, secret_values), outcome.handle)
    if isinstance(outcome, Suspend):
        return Suspend(redact(outcome.output, secret_values), outcome.timer_seconds)
    return redact(outcome, secret_values)


def _describe(error: BaseException) -> str:
    text = str(error)
    return text if text else type(error).__name__
