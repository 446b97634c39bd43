"""The execution planner: from recorded step states, what is ready, skipped or finished. No I/O.

Semantics (CONTRACT §4.3, §4.4), over enabled edges only (a disabled edge does not exist):
- An edge's handle is its `sourceHandle`, else the source type's default handle. A step's
  selected handle is `StepState.selected_handle`, else the type's default handle.
- An edge is decided once its source is decided:
  * source `completed`: taken when the edge's handle equals the selected handle (never for
    `error` edges) and its condition, if any, is true; otherwise not taken;
  * source `failed`: only its `error`-handle edges are taken (their conditions, if any,
    apply; a condition that raises there counts as false, since the step already failed);
  * source `skipped`: not taken, unless the step is a passthrough (`skipped` WITH a
    `selected_handle`: a disabled node), which decides as if it completed with output `{}`
    and that handle (a condition that raises on a passthrough counts as false);
  * source without a step, or `pending`/`running`/`waiting_approval`: undecided.
- Conditions see `input`, `instance` (from `base_context`), `nodes` (`nodes.<id>.output`,
  `nodes.<id>.status` for every node with a step) and `output` (the source's output). A
  condition that raises leaves that edge undecided and is reported in `condition_errors`
  (one message per source node); the caller fails that step and plans again.
- A node without a step is decided when every incoming edge is decided: ready if at least
  one was taken (entry nodes are ready at once), skipped otherwise. A disabled node that
  would be ready is a passthrough instead: the caller records it `skipped` with
  `Plan.passthrough_steps()`; its edges decide in the same call. Skips and passthroughs
  cascade to a fixpoint in one call (one pass in topological order).
- Outcome: `failed` when a step is failed, none of its `error` edges was taken and its
  `on_error` is `fail` (`failed_node` names the first such node in document order); nothing
  new is then decided (`ready`, `passthrough`, `skipped`, `condition_errors` are empty) and
  a retry plans again. `completed` when every node is decided, no step is
  pending/running/waiting and nothing is ready. Otherwise `running`.
- Edges into a node that already has a step are not decided again (`Plan.edges` leaves them
  out, except the `error` edges of failed steps), so conditions are evaluated once per
  decision and replanning a finished instance changes nothing.
- `on_error: continue` is the caller's business: it records the step `completed` with output
  `{"error": message}`, and its default edges decide as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from engine.document import ON_ERROR_FAIL, Edge, WorkflowGraph
from engine.expressions import (
    ExpressionError,
    PreparedContext,
    evaluate_condition,
    expression_context,
    prepare_context,
)
from engine.nodetypes import BUILTIN_NODE_TYPES, DEFAULT_HANDLE, ERROR_HANDLE, NodeType
from engine.statuses import FINAL_STEP_STATUSES, StepStatus

OUTCOME_RUNNING: Final = "running"
OUTCOME_COMPLETED: Final = "completed"
OUTCOME_FAILED: Final = "failed"
# Selected by a passthrough of a type with no default handle (`condition`): matches no edge.
PASSTHROUGH_HANDLE: Final = "passthrough"


@dataclass(frozen=True)
class StepState:
    """What the planner needs of one recorded step (the latest attempt of a node)."""

    status: StepStatus
    selected_handle: str | None = None
    output: Any = None

    @property
    def is_passthrough(self) -> bool:
        return self.status == StepStatus.SKIPPED and self.selected_handle is not None


@dataclass(frozen=True)
class Plan:
    """Decisions for the caller to record, in document order, and the instance outcome."""

    ready: tuple[str, ...] = ()
    passthrough: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()
    condition_errors: tuple[tuple[str, str], ...] = ()
    outcome: str = OUTCOME_RUNNING
    failed_node: str | None = None
    edges: Mapping[str, bool] = field(default_factory=dict)
    passthrough_handles: Mapping[str, str] = field(default_factory=dict)

    @property
    def writes_no_step(self) -> bool:
        """Nothing to record and no step to fail: the instance's steps stay as they are."""
        return not (self.ready or self.passthrough or self.skipped or self.condition_errors)

    def passthrough_steps(self) -> dict[str, StepState]:
        """The `skipped` step state to record for each passthrough node."""
        return {
            node_id: StepState(StepStatus.SKIPPED, self.passthrough_handles[node_id], {})
            for node_id in self.passthrough
        }


def default_handle(node_type_name: str, registry: Mapping[str, NodeType]) -> str | None:
    """The default handle of a type; unknown (plug-in) types use the common default."""
    node_type = registry.get(node_type_name)
    return node_type.default_handle if node_type is not None else DEFAULT_HANDLE


def nodes_context(steps: Mapping[str, StepState]) -> dict[str, dict[str, Any]]:
    """The `nodes` name of expressions: node id -> {"output", "status"}."""
    return {
        node_id: {"output": state.output, "status": str(state.status)}
        for node_id, state in steps.items()
    }


class _Planner:
    def __init__(
        self,
        graph: WorkflowGraph,
        steps: Mapping[str, StepState],
        base_context: Mapping[str, Any],
        registry: Mapping[str, NodeType],
    ) -> None:
        self.graph = graph
        self.registry = registry
        self.states: dict[str, StepState] = dict(steps)
        self.nodes = nodes_context(self.states)
        self.prepared: PreparedContext | None = None
        self.base_context = base_context
        self.edges: dict[str, bool] = {}
        self.condition_errors: dict[str, str] = {}
        self.ready: list[str] = []
        self.passthrough: dict[str, str] = {}
        self.skipped: list[str] = []

    def _condition(self, edge: Edge, output: Any, report: bool = True) -> bool | None:
        if edge.condition is None:
            return True
        try:
            context = self._prepared().with_name("output", output)
            return evaluate_condition(edge.condition, context)
        except ExpressionError as error:
            if not report:
                return False
            self.condition_errors.setdefault(edge.source, f"edge {edge.id!r}: {error}")
            return None

    def decide_edge(self, edge: Edge) -> bool | None:
        """True taken, False not taken, None undecided."""
        state = self.states.get(edge.source)
        if state is None:
            return None
        default = default_handle(self.graph.node(edge.source).type, self.registry)
        handle = edge.source_handle or default
        if state.status == StepStatus.FAILED:
            if handle != ERROR_HANDLE:
                return False
            # The step has already failed: a broken condition cannot fail it again.
            return self._condition(edge, state.output, report=False)
        if state.is_passthrough:
            selected: str | None = state.selected_handle
            output: Any = {}
        elif state.status == StepStatus.COMPLETED:
            selected, output = state.selected_handle or default, state.output
        elif state.status == StepStatus.SKIPPED:
            return False
        else:
            return None
        if handle is None or handle == ERROR_HANDLE or handle != selected:
            return False
        # A passthrough has no step to fail: a condition that raises there counts as false.
        return self._condition(edge, output, report=not state.is_passthrough)

    def _prepared(self) -> PreparedContext:
        # Converted to CEL once per plan and kept in step with `_record`, so each condition
        # costs only the conversion of its source's output.
        if self.prepared is None:
            self.prepared = prepare_context(
                expression_context(
                    self.base_context.get("input"),
                    self.nodes,
                    self.base_context.get("instance", {}),
                )
            )
        return self.prepared

    def _record(self, node_id: str, state: StepState) -> None:
        self.states[node_id] = state
        entry = {"output": state.output, "status": str(state.status)}
        self.nodes[node_id] = entry
        if self.prepared is not None:
            self.prepared.set_entry("nodes", node_id, entry)

    def decide_node(self, node_id: str) -> None:
        incoming = self.graph.incoming(node_id)
        decisions = [self.edges.get(edge.id) for edge in incoming]
        if any(decision is None for decision in decisions):
            return
        node = self.graph.node(node_id)
        if incoming and not any(decisions):
            self.skipped.append(node_id)
            self._record(node_id, StepState(StepStatus.SKIPPED))
        elif not node.enabled:
            handle = default_handle(node.type, self.registry) or PASSTHROUGH_HANDLE
            self.passthrough[node_id] = handle
            self._record(node_id, StepState(StepStatus.SKIPPED, handle, {}))
        else:
            self.ready.append(node_id)

    def _matters(self, edge: Edge) -> bool:
        # Once a target has a step its incoming edges decide nothing more, so conditions are
        # not evaluated again (replanning a finished instance is cheap and changes nothing);
        # error edges of a failed step still decide whether the failure is handled.
        if edge.target not in self.states:
            return True
        state = self.states.get(edge.source)
        return state is not None and state.status == StepStatus.FAILED

    def run(self) -> None:
        for node_id in self.graph.topological_order():
            if node_id not in self.states:
                self.decide_node(node_id)
            for edge in self.graph.outgoing(node_id):
                decision = self.decide_edge(edge) if self._matters(edge) else None
                if decision is not None:
                    self.edges[edge.id] = decision

    def failed_nodes(self) -> list[str]:
        failed = []
        for node in self.graph.nodes:
            state = self.states.get(node.id)
            if state is None or state.status != StepStatus.FAILED:
                continue
            rescued = any(self.edges.get(edge.id) for edge in self.graph.outgoing(node.id))
            if not rescued and node.on_error == ON_ERROR_FAIL:
                failed.append(node.id)
        return failed

    def result(self) -> Plan:
        order = self.graph.document_order
        failed = self.failed_nodes()
        finished = not self.ready and all(
            node.id in self.states and self.states[node.id].status in FINAL_STEP_STATUSES
            for node in self.graph.nodes
        )
        outcome = OUTCOME_FAILED if failed else OUTCOME_COMPLETED if finished else OUTCOME_RUNNING
        if failed:
            # Nothing new is decided once the instance fails: a retry plans again.
            return Plan(outcome=outcome, failed_node=failed[0], edges=self.edges)
        return Plan(
            ready=order(self.ready),
            passthrough=order(self.passthrough),
            skipped=order(self.skipped),
            condition_errors=tuple(
                (node_id, self.condition_errors[node_id])
                for node_id in order(self.condition_errors)
            ),
            outcome=outcome,
            edges=self.edges,
            passthrough_handles=dict(self.passthrough),
        )


def plan(
    graph: WorkflowGraph,
    steps: Mapping[str, StepState],
    base_context: Mapping[str, Any] | None = None,
    registry: Mapping[str, NodeType] | None = None,
) -> Plan:
    """Decide what is ready, skipped or passed through, and the instance outcome.

    `steps` maps node id to the state of its latest step; `base_context` gives `input` and
    `instance` for edge conditions; `registry` (default: the built-in types) gives default
    handles. Raises: ValueError when the enabled graph has a cycle (validate first).
    """
    planner = _Planner(graph, steps, base_context or {}, registry or BUILTIN_NODE_TYPES)
    planner.run()
    return planner.result()


def ready_after_completion(
    graph: WorkflowGraph,
    node_id: str,
    selected_handle: str | None = None,
    registry: Mapping[str, NodeType] | None = None,
) -> tuple[str, ...] | None:
    """What `plan` makes ready when `node_id` completes, if that depends on nothing else.

    That is when every enabled edge out of the node is taken whatever the instance holds: it has
    no condition and its handle is the selected one (`selected_handle`, else the type's
    default), and it leads to an enabled node with no other incoming edge. Each target is
    then decided by this edge alone, and ready. None otherwise (no edge out, so the
    instance may end; a condition, an edge of another handle, a join, or a disabled
    target whose passthrough cascades): plan in full.

    Relies on the instance having been planned to a fixpoint before this completion, as
    the orchestrator keeps it: then nothing but these targets becomes decidable. A target
    that already has a step is not decided again; the caller must then plan in full.
    """
    edges = graph.outgoing(node_id)
    if not edges:
        return None
    default = default_handle(graph.node(node_id).type, registry or BUILTIN_NODE_TYPES)
    selected = selected_handle or default
    for edge in edges:
        handle = edge.source_handle or default
        if edge.condition is not None or handle in (None, ERROR_HANDLE) or handle != selected:
            return None
        if len(graph.incoming(edge.target)) != 1 or not graph.node(edge.target).enabled:
            return None
    return graph.document_order(edge.target for edge in edges)


def instance_output(graph: WorkflowGraph, steps: Mapping[str, StepState]) -> dict[str, Any]:
    """A completed instance's output: each completed leaf node -> its output."""
    return {
        node_id: steps[node_id].output
        for node_id in graph.leaf_nodes()
        if node_id in steps and steps[node_id].status == StepStatus.COMPLETED
    }


def progress(graph: WorkflowGraph, steps: Mapping[str, StepState]) -> int:
    """Share of decided nodes (final step status), 0-100."""
    if not graph.nodes:
        return 100
    decided = sum(
        1
        for node in graph.nodes
        if node.id in steps and steps[node.id].status in FINAL_STEP_STATUSES
    )
    return (100 * decided) // len(graph.nodes)
