"""Run one claimed step's handler: build its context, render/resolve its config, classify errors.

Reads inside the orchestrator's claim transaction; handlers run outside any transaction.
Never writes step state: the orchestrator records what this returns. Secret values never
leave this module unredacted.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from engine.expressions import ExpressionError, expression_context
from engine.nodetypes import NodeConfigError
from engine.templating import has_template, render_template_value
from models.db import Executor
from models.instances import InstanceRow, step_states_of
from models.settings import Settings
from models.steps import ClaimedStep, read_delivered_step
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


@dataclass(frozen=True)
class PreparedStep:
    """What a delivery reads before claiming: the context and the rendered config.

    `render_error` is set when the config's templates cannot be rendered: the step is still
    claimed, and fails with it.
    """

    context: StepContext
    node_type: Any
    rendered: Any
    render_error: Exception | None = None
    # The step as claiming it now would make it, when it was read before any claim.
    next_attempt: ClaimedStep | None = None

    @property
    def runs_before_claim(self) -> bool:
        """Whether this is a pure step, read and rendered: its handler may run unclaimed."""
        return (self.next_attempt is not None and self.render_error is None
                and is_pure(self.node_type))


def is_pure(node_type: Any) -> bool:
    """Whether the type (None when not installed) promises a side-effect-free handler."""
    return bool(getattr(node_type, "pure", False))


@dataclass(frozen=True)
class ExpectedNode:
    """What a task message says of its step: the node, its type and the workflow version."""

    node_id: str
    step_type: str
    workflow_version_id: uuid.UUID


def expected_node(step_type: str, node_id: str | None,
                  version_id: str | None) -> ExpectedNode | None:
    """What a message of `step_type`'s task says, from its keyword arguments.

    Older messages, and those the reconciler re-sends, carry only the step id: None.
    """
    if not node_id or not version_id:
        return None
    try:
        return ExpectedNode(node_id, step_type, uuid.UUID(version_id))
    except ValueError:  # not ours to trust: the reading path needs none of it
        return None


def prepare_step(runtime: WorkerRuntime, executor: Executor,
                 execution_id: uuid.UUID) -> PreparedStep | None:
    """Read what the step needs before claiming it; None when it is not pending (stale).

    Nothing read here changes while the step is pending (the instance's input and version,
    the decided steps' outputs); the claim re-checks the step's and the instance's status.
    """
    delivered = read_delivered_step(executor, execution_id)
    if delivered is None or delivered.status != "pending":
        return None
    instance = delivered.instance
    if instance.workflow_version_id is None:
        return None
    graph, _ = runtime.graphs.get(executor, instance.workflow_version_id)
    node_type = runtime.node_types.get(delivered.step_type)
    node = graph.node_by_id.get(delivered.node_id)
    raw_config = dict(node.config) if node is not None else {}
    nodes: Mapping[str, Any]
    if _reads_nodes(node_type, raw_config):
        nodes = _decided_nodes(executor, instance.id)
    else:
        # Most steps never look at other nodes' outputs: read them only if the handler does.
        nodes = LazyNodes(runtime.session_factory, instance.id)
    context = _context(runtime, execution_id, delivered.node_id, instance, nodes)
    next_attempt = delivered.as_claimed()
    try:
        rendered = _render(node_type, raw_config, context.expressions)
    except ExpressionError as error:
        return PreparedStep(context, node_type, raw_config, error, next_attempt)
    return PreparedStep(context, node_type, rendered, next_attempt=next_attempt)


def config_without_reads(runtime: WorkerRuntime, executor: Executor,
                         expected: ExpectedNode) -> Any:
    """The node's config as it will run, if rendering it reads nothing; else None.

    True of a config without `{{ }}` templates whose type has no expression fields: its
    rendered form is the config itself, so such a step can be claimed (its input recorded)
    before anything about its instance is read. The graph comes from the version cache.
    """
    try:
        graph, _ = runtime.graphs.get(executor, expected.workflow_version_id)
    except LookupError:  # the reading path tells what happened to the step
        return None
    node = graph.node_by_id.get(expected.node_id)
    node_type = runtime.node_types.get(expected.step_type)
    if node is None or node_type is None or node.type != expected.step_type:
        return None
    raw_config = dict(node.config)
    if _reads_nodes(node_type, raw_config):
        return None
    try:
        return _render(node_type, raw_config, {})
    except ExpressionError:  # something template-like after all: rendered after reading
        return None


def prepared_after_claim(runtime: WorkerRuntime, claimed: ClaimedStep, instance: InstanceRow,
                         config: Any) -> PreparedStep:
    """What `prepare_step` would have read, from the claim's own answer."""
    nodes = LazyNodes(runtime.session_factory, instance.id)
    context = _context(runtime, claimed.id, claimed.node_id, instance, nodes)
    return PreparedStep(context, runtime.node_types.get(claimed.step_type), config)


def _context(runtime: WorkerRuntime, execution_id: uuid.UUID, node_id: str,
             instance: InstanceRow, nodes: Mapping[str, Any]) -> StepContext:
    expressions = expression_context(instance_input(instance), nodes, instance_facts(instance))
    return StepContext(step_id=execution_id, instance_id=instance.id, node_id=node_id,
                       attempt=0, expressions=expressions, settings=runtime.settings,
                       session_factory=runtime.session_factory)


def _decided_nodes(executor: Executor, instance_id: uuid.UUID) -> dict[str, Any]:
    steps = [s for s in step_states_of(executor, instance_id)
             if s.status in ("completed", "failed", "skipped")]
    return nodes_context(steps)


def _reads_nodes(node_type: Any, config: Any) -> bool:
    """Whether rendering the config or the type's expression fields will read `nodes`."""
    return bool(getattr(node_type, "expression_fields", ())) or _has_template(config)


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return has_template(value)
    if isinstance(value, dict):
        return any(_has_template(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_template(item) for item in value)
    return False


class LazyNodes(Mapping[str, Any]):
    """`nodes` of the expression context, read in its own short session on first use."""

    def __init__(self, session_factory: Any, instance_id: uuid.UUID) -> None:
        self._session_factory = session_factory
        self._instance_id = instance_id
        self._nodes: dict[str, Any] | None = None

    def _load(self) -> dict[str, Any]:
        if self._nodes is None:
            with self._session_factory() as session:
                self._nodes = _decided_nodes(session, self._instance_id)
        return self._nodes

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _secret_lookup(runtime: WorkerRuntime) -> Any:
    from models.secret_store import read_secret_value

    def lookup(name: str) -> str:
        with runtime.session_factory() as session:
            return read_secret_value(session, runtime.settings, name)

    return lookup


def run_handler(runtime: WorkerRuntime, claimed: ClaimedStep, prepared: PreparedStep) -> Any:
    """The handler's outcome, or a StepFailure whose message is free of secret values."""
    secret_values: frozenset[str] = frozenset()
    context = dataclasses.replace(prepared.context, attempt=claimed.attempt)
    try:
        if prepared.node_type is None:
            raise PermanentNodeError(f"node type {claimed.step_type!r} is not installed")
        if prepared.render_error is not None:
            raise prepared.render_error
        resolved, secret_values = resolve_secrets(prepared.rendered, _secret_lookup(runtime))
        config = prepared.node_type.load_config(resolved)
        outcome = prepared.node_type.run(config, context)
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
