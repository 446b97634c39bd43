"""A new instance created, admitted and given its first steps in one transaction sent whole.

For a workflow that ran before (it has a pinned version): the caller reads that version
(`pinned_version_of`), plans the first steps from its graph, and `insert_and_start` does
the rest in one round trip and commits it. The admission lock is then held only while the
database runs the statements, where deciding in Python between round trips held it over
three of them: every launch waits for that lock, so its hold time bounds how many
launches a second the whole platform can take.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.db import Executor
from models.driver_sql import fetch_in_transaction, fetch_one, jsonb
from models.instance import WorkflowInstance
from models.instances import (
    ADMISSION_LOCK_KEY,
    StartedInstance,
    start_decision_of,
    start_if_room_statement,
)
from models.security import INSERT_AUDIT_ENTRY
from models.steps import NewStep, insert_steps_statement, inserted_step_ids


def pinned_version_of(executor: Executor, workflow_id: uuid.UUID) -> uuid.UUID | None:
    """The version an active workflow's launches pin; None for one that is unknown,
    inactive, or never ran (it has no pinned version yet)."""
    row = fetch_one(executor, """
        SELECT current_version_id FROM workflows
         WHERE id = %(id)s AND is_active IS NOT FALSE AND current_version_id IS NOT NULL
    """, {"id": workflow_id})
    return None if row is None else row[0]


@dataclass(frozen=True)
class InsertedLaunch:
    """What `insert_and_start` wrote and committed."""

    instance: WorkflowInstance  # as inserted, not attached to any session
    started: StartedInstance | None  # None: there was no room, it waits pending
    step_ids: dict[str, uuid.UUID]  # the first steps' rows, by node id (when started)


_INSTANCE_COLUMNS = tuple(column.name for column in WorkflowInstance.__table__.columns)
# A new pending instance of the workflow's pinned version, if the workflow is active and
# that version is still the one pinned. No row otherwise, and nothing written.
_INSERT_INSTANCE = f"""
    INSERT INTO workflow_instances (id, workflow_id, workflow_version_id, status, priority,
                                    execution_context, triggered_by, trigger_source, progress)
    SELECT %(id)s, w.id, w.current_version_id, 'pending', %(priority)s, %(context)s,
           %(triggered_by)s, %(trigger_source)s, 0
      FROM workflows AS w
     WHERE w.id = %(workflow_id)s AND w.is_active IS NOT FALSE
       AND w.current_version_id = %(version_id)s
 RETURNING {", ".join(_INSTANCE_COLUMNS)}
"""
# The admission lock, only if the statement before it inserted the instance. Taken after
# the insert, as every launch takes it after whatever locks the workflow's row: pinning a
# first version locks that row before the admission lock (worker.launch.pinned_version).
_LOCK_IF_INSERTED = ("SELECT pg_advisory_xact_lock(%(key)s) FROM workflow_instances"
                     " WHERE id = %(id)s")

# The API's audit row for the call that launches, only if the statement before it inserted
# the instance: it commits or rolls back with the launch, and is not written at all when
# the launch writes nothing (the caller then takes the general path, which records it).
_AUDIT_IF_INSERTED = (f"{INSERT_AUDIT_ENTRY}"
                      " FROM workflow_instances WHERE id = %(instance_id)s")


def insert_and_start(connection: Executor, *, instance_id: uuid.UUID, workflow_id: uuid.UUID,
                     version_id: uuid.UUID, values: dict[str, Any], timeout_seconds: float,
                     max_running: int, first_steps: Sequence[NewStep], progress: int | None,
                     audit_entry: Mapping[str, Any] | None = None) -> InsertedLaunch | None:
    """One transaction, one round trip: insert pending instance `instance_id` of
    `version_id`, take the admission lock, start it if fewer than `max_running` instances
    run or wait besides it, and then record `first_steps` (and its `progress`, if not
    None). Commits. `audit_entry`: the audit row of the call that launches (the columns
    `models.security.AUDIT_ENTRY_COLUMNS` names), written with the instance.

    Needs an autocommit connection (`models.driver_sql.fetch_in_transaction`). `values`:
    priority, execution_context, triggered_by, trigger_source. None, with nothing written
    and no lock taken, when the workflow is gone, inactive, or pins another version now.
    """
    audited = [] if audit_entry is None else [(_AUDIT_IF_INSERTED, {
        **audit_entry, "details": jsonb(audit_entry["details"]), "instance_id": instance_id})]
    # The audit row goes before the admission lock: every launch waits for that lock.
    inserted, *_, started, steps = fetch_in_transaction(connection, [
        (_INSERT_INSTANCE, {
            "id": instance_id, "workflow_id": workflow_id, "version_id": version_id,
            "priority": values["priority"], "context": jsonb(values["execution_context"]),
            "triggered_by": values["triggered_by"], "trigger_source": values["trigger_source"],
        }),
        *audited,
        (_LOCK_IF_INSERTED, {"key": ADMISSION_LOCK_KEY, "id": instance_id}),
        start_if_room_statement(instance_id, timeout_seconds, max_running, progress),
        insert_steps_statement(instance_id, first_steps, if_running=True),
    ])
    if not inserted:
        return None
    instance = WorkflowInstance(**dict(zip(_INSTANCE_COLUMNS, inserted[0], strict=True)))
    return InsertedLaunch(instance, start_decision_of(started).started,
                          inserted_step_ids(steps))
