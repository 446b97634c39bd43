"""The graph cache reads a version once, through a session, a connection or an engine; the
pinned versions remembered for launches stay bounded."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.e2e.helpers import edge, instance_row, make_workflow, node, start
from tests.worker.helpers import cancel_open_instances
from worker.runtime import GraphCache, PinnedVersions


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


def test_pinned_versions_drop_the_oldest_read_when_full() -> None:
    workflows = [uuid.uuid4() for _ in range(3)]
    versions = [uuid.uuid4() for _ in range(3)]
    pinned = PinnedVersions(capacity=2)
    pinned.remember(workflows[0], versions[0])
    pinned.remember(workflows[1], versions[1])
    pinned.remember(workflows[0], versions[2])  # read again: now the newest
    pinned.remember(workflows[2], versions[1])
    assert [pinned.get(w) for w in workflows] == [versions[2], None, versions[1]]
    pinned.forget(workflows[0])
    assert pinned.get(workflows[0]) is None
