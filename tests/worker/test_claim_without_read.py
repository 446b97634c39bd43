"""A delivery whose message names its node is claimed in one statement if its config reads
nothing; any other delivery (a template, a wrong name, a stale message) reads first."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest
from marshmallow import INCLUDE, Schema

from models.steps import StepRef
from tests.e2e.helpers import edge, instance_row, make_workflow, node, start, steps
from tests.worker.helpers import RecordingCelery, cancel_open_instances
from worker import step_run
from worker.dispatch import send_steps
from worker.nodes import with_run
from worker.orchestrator import execute_step
from worker.step_run import ExpectedNode, expected_node


class ReadCounter:
    """Wraps `read_delivered_step` in worker.step_run, counting the deliveries that read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        original = step_run.read_delivered_step

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(step_run, "read_delivered_step", counting)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> ReadCounter:
    return ReadCounter(monkeypatch)


class AnyConfig(Schema):
    class Meta:
        unknown = INCLUDE


@pytest.fixture
def contexts(runtime: Any) -> Any:
    """A runtime whose noop takes any config and records the config and context it ran with.

    Not pure: a pure type's delivery always reads (tests/worker/test_pure_steps.py).
    """
    seen: list[Any] = []

    def capture(config: dict[str, Any], context: Any) -> Any:
        seen.append((config, context))
        return {}

    noop = dataclasses.replace(with_run("noop", capture), config_schema=AnyConfig, pure=False)
    return dataclasses.replace(runtime, node_types={**runtime.node_types, "noop": noop}), seen


def _chain(runtime: Any, config: dict[str, Any] | None = None) -> tuple[uuid.UUID, uuid.UUID]:
    """a -> b (noops, `a` with `config`), started with an input; returns workflow and instance."""
    workflow_id = make_workflow(runtime, [node("a", "noop", config), node("b", "noop")],
                                [edge("a", "b")])
    return workflow_id, start(runtime, workflow_id, input={"ticket": 7})


def _expected(runtime: Any, instance_id: uuid.UUID, node_id: str) -> ExpectedNode:
    version_id = instance_row(runtime, instance_id).workflow_version_id
    assert version_id is not None
    return ExpectedNode(node_id, "noop", version_id)


def test_a_step_that_reads_nothing_runs_on_what_its_claim_returns(
        contexts: Any, reads: ReadCounter) -> None:
    runtime, seen = contexts
    workflow_id, instance_id = _chain(runtime, {"note": "plain text"})
    try:
        first = steps(runtime, instance_id)["a"]
        assert execute_step(runtime, first.id, "t-a", _expected(runtime, instance_id, "a")) \
            == "dict"
        assert reads.calls == 0
        after = steps(runtime, instance_id)
        assert after["a"].status == "completed" and after["a"].attempt == 1
        assert after["a"].input_data == {"note": "plain text"}
        assert after["a"].celery_task_id == "t-a"
        assert after["b"].status == "pending"
        config, context = seen[-1]
        assert config == {"note": "plain text"}
        assert (context.step_id, context.node_id, context.attempt) == (first.id, "a", 1)
        assert context.input == {"ticket": 7}
        assert context.expressions["instance"]["id"] == str(instance_id)
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_both_paths_give_a_handler_the_same_context(contexts: Any,
                                                    reads: ReadCounter) -> None:
    runtime, seen = contexts
    contexts_by_path = []
    for expected in (True, False):
        workflow_id, instance_id = _chain(runtime)
        try:
            first = steps(runtime, instance_id)["a"].id
            hint = _expected(runtime, instance_id, "a") if expected else None
            assert execute_step(runtime, first, "t", hint) == "dict"
            _, context = seen[-1]
            facts = context.expressions["instance"]
            assert (facts["id"], facts["workflow_id"]) == (str(instance_id), str(workflow_id))
            contexts_by_path.append((context.input, facts["triggered_by"], context.attempt,
                                     sorted(context.expressions)))
        finally:
            cancel_open_instances(runtime, workflow_id)
    assert reads.calls == 1  # the delivery without a hint
    assert contexts_by_path[0] == contexts_by_path[1]


@pytest.mark.parametrize(("config", "named", "ran_with"), [
    # A template: read and rendered first.
    ({"ticket": "{{ input.ticket }}"}, "a", {"ticket": 7}),
    # The message says "b" (whose config is empty); the step is "a", and runs as "a".
    ({"mine": "a"}, "b", {"mine": "a"}),
], ids=["templated-config", "message-names-another-node"])
def test_a_delivery_that_cannot_skip_the_read_reads_first(
        contexts: Any, reads: ReadCounter, config: dict[str, Any], named: str,
        ran_with: dict[str, Any]) -> None:
    runtime, seen = contexts
    workflow_id, instance_id = _chain(runtime, config)
    try:
        first = steps(runtime, instance_id)["a"].id
        assert execute_step(runtime, first, "t", _expected(runtime, instance_id, named)) \
            == "dict"
        assert reads.calls == 1
        assert seen[-1][0] == ran_with
        assert steps(runtime, instance_id)["a"].input_data == ran_with
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_message_naming_an_unknown_version_reads_first(runtime: Any,
                                                         reads: ReadCounter) -> None:
    workflow_id, instance_id = _chain(runtime)
    try:
        first = steps(runtime, instance_id)["a"].id
        unknown = ExpectedNode("a", "noop", uuid.uuid4())
        assert execute_step(runtime, first, "t", unknown) == "dict"
        assert reads.calls == 1
        assert steps(runtime, instance_id)["a"].status == "completed"
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_second_delivery_of_a_finished_step_changes_nothing(runtime: Any) -> None:
    workflow_id, instance_id = _chain(runtime)
    try:
        first = steps(runtime, instance_id)["a"].id
        expected = _expected(runtime, instance_id, "a")
        assert execute_step(runtime, first, "t1", expected) == "dict"
        before = steps(runtime, instance_id)
        assert execute_step(runtime, first, "t2", expected) == "stale"
        after = steps(runtime, instance_id)
        assert after["a"].attempt == before["a"].attempt == 1
        assert after["a"].celery_task_id == "t1"
        assert after["a"].updated_at == before["a"].updated_at
    finally:
        cancel_open_instances(runtime, workflow_id)


def test_a_message_names_node_and_version_only_when_the_sender_knows_the_version(
        runtime: Any) -> None:
    celery = RecordingCelery()
    step_id, instance_id, version_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    known = StepRef(step_id, instance_id, "a", "noop", 30.0, version_id)
    unknown = StepRef(step_id, instance_id, "a", "noop", 30.0)
    send_steps(celery, runtime.node_types, [known, unknown], {step_id: 30.0})
    (_, args, with_hint), (_, same_args, without_hint) = celery.sent
    assert args == same_args == [str(step_id)]
    assert with_hint["kwargs"] == {"node_id": "a", "version_id": str(version_id)}
    assert "kwargs" not in without_hint


def test_a_message_with_only_the_step_id_or_a_malformed_version_expects_nothing() -> None:
    version = str(uuid.uuid4())
    assert expected_node("noop", None, None) is None
    assert expected_node("noop", "a", None) is None
    assert expected_node("noop", "a", "not-a-uuid") is None
    assert expected_node("noop", "a", version) == ExpectedNode("a", "noop", uuid.UUID(version))
