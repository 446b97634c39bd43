"""The collaborators one worker-side process shares: settings, database, node types, graphs.

Built by process entry points (`flowyard worker`, `flowyard scheduler`, the API) from
settings; nothing here is created at import time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, sessionmaker

from engine.document import WorkflowGraph, parse_workflow
from models.db import (
    Executor,
    HeldAutocommit,
    autocommit,
    make_engine,
    make_session_factory,
)
from models.settings import Settings
from models.workflow import WorkflowVersion
from worker.leases import LeaseKeeper


class GraphCache:
    """Parsed graphs by workflow version id; versions are immutable, so entries never go stale."""

    def __init__(self) -> None:
        self._graphs: dict[uuid.UUID, tuple[WorkflowGraph, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, session: Executor | Engine,
            version_id: uuid.UUID) -> tuple[WorkflowGraph, dict[str, Any]]:
        """The graph and configuration of a version. Raises: LookupError when it is gone.

        Given an engine, a connection is taken from it only when the version is not cached.
        """
        with self._lock:
            cached = self._graphs.get(version_id)
        if cached is not None:
            return cached
        if isinstance(session, Engine):
            with session.connect() as connection:
                return self.get(connection, version_id)
        row = session.execute(
            select(WorkflowVersion.workflow_data, WorkflowVersion.configuration)
            .where(WorkflowVersion.id == version_id)
        ).one_or_none()
        if row is None:
            raise LookupError(f"workflow version {version_id} does not exist")
        configuration = dict(row[1] or {})
        entry = (parse_workflow(row[0], configuration), configuration)
        with self._lock:
            self._graphs[version_id] = entry
        return entry


class PinnedVersions:
    """The version each workflow's launches pin, as this process last read it.

    May be stale: saving a workflow pins a new version, and deactivating it stops its
    launches, without any process being told. So only a write that checks the version is
    still pinned, and the workflow still active, may use an entry
    (`models.launches.insert_and_start` does); when that check refuses, the caller forgets
    the entry. Holds at most `capacity` workflows, the oldest read dropped first.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self._versions: dict[uuid.UUID, uuid.UUID] = {}
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, workflow_id: uuid.UUID) -> uuid.UUID | None:
        with self._lock:
            return self._versions.get(workflow_id)

    def remember(self, workflow_id: uuid.UUID, version_id: uuid.UUID) -> None:
        with self._lock:
            self._versions.pop(workflow_id, None)
            self._versions[workflow_id] = version_id
            if len(self._versions) > self._capacity:
                del self._versions[next(iter(self._versions))]

    def forget(self, workflow_id: uuid.UUID) -> None:
        with self._lock:
            self._versions.pop(workflow_id, None)


@dataclass
class WorkerRuntime:
    settings: Settings
    node_types: Mapping[str, Any]
    engine: Engine
    session_factory: sessionmaker[Session]
    graphs: GraphCache = field(default_factory=GraphCache)
    pinned_versions: PinnedVersions = field(default_factory=PinnedVersions)
    celery: Any = None
    leases: LeaseKeeper | None = None
    # Set in processes that run steps one after another on each thread (Celery's pool
    # children): each thread then keeps its autocommit connection between uses.
    held: HeldAutocommit | None = None

    def autocommit(self) -> AbstractContextManager[Connection]:
        """An autocommit connection (`models.db.autocommit`) for a short unit of work;
        this thread's held one when the process holds them."""
        if self.held is not None:
            return self.held.connection()
        return autocommit(self.engine)

    def lease_keeper(self) -> LeaseKeeper:
        """The process's one lease-keeping timer (created on first use)."""
        if self.leases is None:
            self.leases = LeaseKeeper(self.session_factory, self.settings.step_lease_seconds)
        return self.leases


def build_runtime(settings: Settings, node_types: Mapping[str, Any] | None = None,
                  *, pool_size: int = 5, hold_connections: bool = False) -> WorkerRuntime:
    """A runtime on a new engine; node types default to the installed plug-ins.
    `hold_connections`: see `WorkerRuntime.held`."""
    if node_types is None:
        from worker.plugins import load_node_types

        node_types = load_node_types()
    engine = make_engine(settings, pool_size=pool_size)
    return WorkerRuntime(settings=settings, node_types=node_types, engine=engine,
                         session_factory=make_session_factory(engine),
                         held=HeldAutocommit(engine) if hold_connections else None)
