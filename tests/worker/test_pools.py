"""Which queues a threads pool may run (worker.pools): only those of pure node types."""

from __future__ import annotations

import dataclasses

import pytest

from engine.nodetypes import BUILTIN_NODE_TYPES
from worker.pools import PoolChoiceError, all_queues, check_pool, pure_queues


def test_the_pure_queues_are_those_of_the_built_in_pure_types() -> None:
    assert pure_queues(BUILTIN_NODE_TYPES) == ["condition", "noop", "transform", "trigger"]
    assert set(pure_queues(BUILTIN_NODE_TYPES)) < set(all_queues(BUILTIN_NODE_TYPES))


@pytest.mark.parametrize("queues", [["noop"], ["trigger", "noop", "transform", "condition"]])
def test_threads_may_run_pure_queues(queues: list[str]) -> None:
    check_pool("threads", queues, BUILTIN_NODE_TYPES)


@pytest.mark.parametrize(("queues", "refused"), [
    (["noop", "http"], "not http:"),
    (["approval", "delay"], "not approval, delay:"),
    # No node type is routed there (the notifications' own sends, a typo): not pure.
    (["noop", "nowhere"], "not nowhere:"),
])
def test_threads_refuse_any_other_queue(queues: list[str], refused: str) -> None:
    with pytest.raises(PoolChoiceError, match="runs only the queues of pure node types") as error:
        check_pool("threads", queues, BUILTIN_NODE_TYPES)
    assert refused in str(error.value)


def test_prefork_runs_any_queue() -> None:
    check_pool("prefork", all_queues(BUILTIN_NODE_TYPES) + ["nowhere"], BUILTIN_NODE_TYPES)


def test_a_queue_shared_with_a_type_that_can_block_is_not_pure() -> None:
    # A plug-in type routed to the noop queue makes that queue one a step can hang in.
    blocking = dataclasses.replace(BUILTIN_NODE_TYPES["http"], name="lookup", queue="noop")
    node_types = {**BUILTIN_NODE_TYPES, "lookup": blocking}
    assert "noop" not in pure_queues(node_types)
    with pytest.raises(PoolChoiceError, match="not noop:"):
        check_pool("threads", ["noop"], node_types)


def test_an_unknown_pool_is_refused() -> None:
    with pytest.raises(PoolChoiceError, match="unknown pool 'gevent'"):
        check_pool("gevent", ["noop"], BUILTIN_NODE_TYPES)
