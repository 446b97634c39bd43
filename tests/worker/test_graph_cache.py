"""The graph cache reads a version once, through a session, a connection or an engine."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.helpers import edge, instance_row, make_workflow, node, start
from tests.worker.helpers import cancel_open_instances
from worker.runtime import GraphCache


def test_an_engine_is_asked_for_a_connection_only_on_a_miss(runtime: Any) -> None:
    workflow_id = make_workflow(runtime, [node("a", "noop"), node("b", "noop")],
                                [edge("a", "b")])
    try:
        version_id = instance_row(runtime, start(runtime, workflow_id)).workflow_version_id
        assert version_id is not None
        cache = GraphCache()
        graph, _ = cache.get(runtime.engine, version_id)
        assert [n.id for n in graph.nodes] == ["a", "b"]
        # Cached: nothing is read, so no executor is needed at all.
        assert cache.get(None, version_id)[0] is graph  # type: ignore[arg-type]
        with pytest.raises(LookupError):
            cache.get(runtime.engine, uuid.uuid4())
    finally:
        cancel_open_instances(runtime, workflow_id)
