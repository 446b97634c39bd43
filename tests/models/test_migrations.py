"""The migrations build the schema the models describe, from an empty database."""

from __future__ import annotations

import uuid

import pytest
from alembic import command
from sqlalchemy import inspect, text

from migrations import runner

SPECIFIED_COLUMNS = {
    "workflows": {"id", "name", "description", "category", "version", "workflow_data",
                  "is_active", "is_template", "tags", "configuration", "created_by",
                  "updated_by", "created_at", "updated_at"},
    "workflow_nodes": {"id", "workflow_id", "node_id", "node_type", "label", "position_x",
                       "position_y", "configuration", "is_enabled", "created_at", "updated_at"},
    "workflow_edges": {"id", "workflow_id", "edge_id", "source_node_id", "target_node_id",
                       "source_handle", "target_handle", "edge_type", "conditions", "is_enabled",
                       "created_at", "updated_at"},
    "workflow_triggers": {"id", "workflow_id", "trigger_type", "trigger_source",
                          "configuration", "is_active", "last_triggered", "trigger_count",
                          "created_at", "updated_at"},
    "workflow_instances": {"id", "workflow_id", "status", "priority", "started_at",
                           "completed_at", "paused_at", "progress", "current_step",
                           "execution_context", "output_data", "error_details", "triggered_by",
                           "trigger_source", "execution_metrics", "created_at", "updated_at"},
    "workflow_executions": {"id", "instance_id", "node_id", "step_type", "status", "started_at",
                            "completed_at", "duration_ms", "input_data", "output_data",
                            "error_message", "retry_count", "max_retries", "created_at",
                            "updated_at"},
    "workflow_approvals": {"id", "execution_id", "approver_role", "approver_user_id", "status",
                           "requested_at", "responded_at", "expires_at", "approval_message",
                           "rejection_reason", "approval_data", "notifications_sent",
                           "created_at", "updated_at"},
    "workflow_notifications": {"id", "workflow_id", "instance_id", "execution_id",
                               "notification_type", "channel", "recipients", "subject",
                               "message", "status", "sent_at", "delivered_at", "error_details",
                               "retry_count", "notification_data", "created_at", "updated_at"},
}


def test_every_specified_table_has_its_columns(db_engine) -> None:
    inspector = inspect(db_engine)
    for table, columns in SPECIFIED_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table)}
        assert columns <= present, f"{table} lacks {sorted(columns - present)}"


def test_every_foreign_key_is_indexed(db_engine) -> None:
    inspector = inspect(db_engine)
    for table in inspector.get_table_names():
        indexed = {tuple(ix["column_names"][:1]) for ix in inspector.get_indexes(table)}
        indexed |= {tuple(uq["column_names"][:1]) for uq in inspector.get_unique_constraints(table)}
        indexed.add(tuple(inspector.get_pk_constraint(table)["constrained_columns"][:1]))
        for fk in inspector.get_foreign_keys(table):
            first = tuple(fk["constrained_columns"][:1])
            assert first in indexed, f"{table}.{first[0]} is a foreign key without an index"


def test_models_and_migrations_agree(database_url: str) -> None:
    runner.check(database_url)  # raises when autogenerate would emit operations


def test_single_head() -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(runner.alembic_config("postgresql://unused/db"))
    assert len(script.get_heads()) == 1


def test_the_latest_migration_downgrades_and_upgrades_again(empty_database_url: str) -> None:
    runner.upgrade(empty_database_url)
    command.downgrade(runner.alembic_config(empty_database_url), "-1")
    runner.upgrade(empty_database_url)
    runner.check(empty_database_url)


@pytest.mark.parametrize(("query", "index"), [
    ("SELECT id FROM workflow_instances WHERE workflow_id = :id AND idempotency_key = :key",
     "uq_workflow_instances_workflow_id_idempotency_key"),
    ("SELECT id FROM workflow_instances WHERE parent_execution_id = :id",
     "ix_workflow_instances_parent_execution_id"),
    # What the SET NULL action runs when a step is deleted, and the sub-workflow queries' join.
    ("UPDATE workflow_instances SET parent_execution_id = NULL WHERE :id = parent_execution_id",
     "ix_workflow_instances_parent_execution_id"),
    ("SELECT child.id FROM workflow_executions step JOIN workflow_instances child"
     " ON child.parent_execution_id = step.id WHERE step.id = :id",
     "ix_workflow_instances_parent_execution_id"),
    ("SELECT id FROM workflow_executions WHERE instance_id = :id",
     "uq_workflow_executions_instance_id_node_id"),
    ("SELECT id FROM workflow_instances WHERE workflow_id = :id",
     "ix_workflow_instances_workflow_id_created_at"),
])
def test_lookups_by_key_parent_or_owner_use_an_index(db_session, query: str,
                                                       index: str) -> None:
    """The partial indexes hold only rows with a key or a parent: a query naming one must
    still be able to use them; and the indexes dropped as redundant have a stand-in."""
    db_session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = db_session.execute(text(f"EXPLAIN {query}"),
                              {"id": uuid.uuid4(), "key": "k"}).scalars().all()
    db_session.rollback()
    assert any(index in line for line in plan), "\n".join(plan)
