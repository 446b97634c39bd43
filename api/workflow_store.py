"""Saving workflow definitions: validation, the versions history and the nodes/edges mirror.

Owns: `validate_definition` (engine validation plus the mirror's column widths),
`create_workflow`, `update_workflow`, `delete_workflow`, `bump_patch_version`. Used by the
workflows endpoints and by anything else that stores a definition (templates, import, CLI).
Functions take a session and never commit; the caller owns the transaction, so a definition,
its version row and its mirror always land together or not at all.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from api.errors import ConflictError, UnprocessableError
from engine.nodetypes import NodeType
from engine.validation import Limits, Problem, validate_workflow
from models.instance import WorkflowInstance
from models.settings import Settings
from models.workflow import Workflow, WorkflowEdge, WorkflowNode, WorkflowVersion

# Widths of the mirror's columns (models.workflow); longer values could not be mirrored.
_NODE_ID_WIDTH = 100
_TYPE_WIDTH = 50
_HANDLE_WIDTH = 50
_LABEL_WIDTH = 255
_INT32 = 2**31 - 1
# Fields of a definition whose change makes a new version (the rest is metadata).
VERSIONED_FIELDS = ("workflow_data", "configuration")
METADATA_FIELDS = ("name", "description", "category", "tags", "is_active", "is_template")


def limits_from(settings: Settings) -> Limits:
    return Limits(max_nodes=settings.max_nodes, max_edges=settings.max_edges,
                  max_document_bytes=settings.max_document_bytes)


def _width_problems(workflow_data: Any) -> list[Problem]:
    if not isinstance(workflow_data, dict):
        return []
    problems: list[Problem] = []
    for node in workflow_data.get("nodes") or []:
        if isinstance(node, dict) and isinstance(node.get("id"), str) \
                and len(node["id"]) > _NODE_ID_WIDTH:
            problems.append(Problem("id_too_long",
                                    f"node id is longer than {_NODE_ID_WIDTH} characters",
                                    node_id=node["id"], field="id"))
    for edge in workflow_data.get("edges") or []:
        if not isinstance(edge, dict):
            continue
        edge_id = edge.get("id") if isinstance(edge.get("id"), str) else None
        if edge_id is not None and len(edge_id) > _NODE_ID_WIDTH:
            problems.append(Problem("id_too_long",
                                    f"edge id is longer than {_NODE_ID_WIDTH} characters",
                                    edge_id=edge_id, field="id"))
        for key, width in (("sourceHandle", _HANDLE_WIDTH), ("targetHandle", _HANDLE_WIDTH),
                           ("type", _TYPE_WIDTH)):
            value = edge.get(key)
            if isinstance(value, str) and len(value) > width:
                problems.append(Problem("value_too_long",
                                        f"edge {key} is longer than {width} characters",
                                        edge_id=edge_id, field=key))
    return problems


def validate_definition(workflow_data: Any, configuration: Mapping[str, Any] | None, *,
                        node_types: Mapping[str, NodeType], settings: Settings) -> None:
    """Check a definition before anything is stored.

    Raises:
        UnprocessableError: with `details.problems`, every problem found.
    """
    problems = validate_workflow(workflow_data, node_types, limits_from(settings),
                                 configuration=configuration)
    problems.extend(_width_problems(workflow_data))
    if problems:
        raise UnprocessableError(
            f"the workflow has {len(problems)} problem(s)",
            details={"problems": [problem.as_dict() for problem in problems]},
        )


def bump_patch_version(version: str | None) -> str:
    """1.0.0 -> 1.0.1; a version without a trailing number gets `.1` appended."""
    version = version or "1.0.0"
    match = re.search(r"(\d+)(?!.*\d)", version)
    if match is None:
        return f"{version}.1"[:20]
    bumped = str(int(match.group(1)) + 1)
    return (version[: match.start()] + bumped + version[match.end():])[:20]


def _coordinate(position: Any, axis: str) -> int:
    value = position.get(axis) if isinstance(position, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    if not math.isfinite(value):  # the API refuses NaN/Infinity; other callers may not
        return 0
    return max(-_INT32, min(_INT32, round(value)))


def _node_rows(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for node in nodes:
        data: dict[str, Any] = node["data"] if isinstance(node.get("data"), dict) else {}
        label = data.get("label") if isinstance(data.get("label"), str) else ""
        rows.append({
            "node_id": node["id"], "node_type": node["type"],
            "label": (label or node["id"])[:_LABEL_WIDTH],
            "position_x": _coordinate(node.get("position"), "x"),
            "position_y": _coordinate(node.get("position"), "y"),
            "configuration": data.get("config"), "is_enabled": data.get("enabled", True),
        })
    return rows


def _edge_rows(edges: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for edge in edges:
        data: dict[str, Any] = edge["data"] if isinstance(edge.get("data"), dict) else {}
        condition = data.get("condition")
        rows.append({
            "edge_id": edge["id"], "source_node_id": edge["source"],
            "target_node_id": edge["target"], "source_handle": edge.get("sourceHandle"),
            "target_handle": edge.get("targetHandle"),
            "edge_type": edge.get("type") or "smoothstep",
            "conditions": {"condition": condition} if condition is not None else None,
            "is_enabled": data.get("enabled", True),
        })
    return rows


# One statement per table whatever the size: the rows travel as one JSON array and
# PostgreSQL unpacks them (thousands of single-row INSERTs took most of a large save).
_INSERT_NODES = text("""
INSERT INTO workflow_nodes (workflow_id, node_id, node_type, label, position_x, position_y,
                            configuration, is_enabled)
SELECT CAST(:workflow_id AS uuid), r.node_id, r.node_type, r.label, r.position_x, r.position_y,
       r.configuration, r.is_enabled
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    node_id text, node_type text, label text, position_x integer, position_y integer,
    configuration jsonb, is_enabled boolean)
""")
_INSERT_EDGES = text("""
INSERT INTO workflow_edges (workflow_id, edge_id, source_node_id, target_node_id, source_handle,
                            target_handle, edge_type, conditions, is_enabled)
SELECT CAST(:workflow_id AS uuid), r.edge_id, r.source_node_id, r.target_node_id,
       r.source_handle, r.target_handle, r.edge_type, r.conditions, r.is_enabled
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
    edge_id text, source_node_id text, target_node_id text, source_handle text,
    target_handle text, edge_type text, conditions jsonb, is_enabled boolean)
""")


def mirror_graph(session: Session, workflow_id: uuid.UUID, workflow_data: dict[str, Any]) -> None:
    """Replace the workflow_nodes/workflow_edges rows with those of a validated document."""
    session.execute(delete(WorkflowEdge).where(WorkflowEdge.workflow_id == workflow_id))
    session.execute(delete(WorkflowNode).where(WorkflowNode.workflow_id == workflow_id))
    nodes = _node_rows(workflow_data.get("nodes") or [])
    edges = _edge_rows(workflow_data.get("edges") or [])
    if nodes:
        session.execute(_INSERT_NODES, {"workflow_id": str(workflow_id),
                                        "rows": json.dumps(nodes)})
    if edges:
        session.execute(_INSERT_EDGES, {"workflow_id": str(workflow_id),
                                        "rows": json.dumps(edges)})


def _add_version(session: Session, workflow: Workflow, revision: int, actor: str) -> None:
    version = WorkflowVersion(id=uuid.uuid4(), workflow_id=workflow.id, revision=revision,
                              version=workflow.version or "1.0.0",
                              workflow_data=workflow.workflow_data,
                              configuration=workflow.configuration, created_by=actor)
    session.add(version)
    session.flush()
    workflow.current_version_id = version.id


def create_workflow(session: Session, fields: Mapping[str, Any], actor: str) -> Workflow:
    """Store a validated definition as revision 1 with its mirror (flushed, not committed)."""
    fields = {"tags": [], "configuration": {}, **fields}
    # clock_timestamp(), not now(): several workflows created in one transaction still list
    # newest first.
    workflow = Workflow(id=uuid.uuid4(), created_by=actor, updated_by=actor,
                        created_at=func.clock_timestamp(), updated_at=func.clock_timestamp(),
                        **{key: fields[key] for key in (*METADATA_FIELDS, *VERSIONED_FIELDS,
                                                       "version") if key in fields})
    session.add(workflow)
    session.flush()
    _add_version(session, workflow, 1, actor)
    mirror_graph(session, workflow.id, workflow.workflow_data)
    session.flush()
    return workflow


def update_workflow(session: Session, workflow: Workflow, fields: Mapping[str, Any],
                    actor: str) -> Workflow:
    """Apply the given fields; a changed definition becomes a new revision and version.

    `workflow` must have been loaded FOR UPDATE so revisions are numbered without races.
    """
    requested_version = fields.get("version")
    relabelled = requested_version is not None and requested_version != workflow.version
    changed = relabelled or any(key in fields and fields[key] != getattr(workflow, key)
                                for key in VERSIONED_FIELDS)
    for key in METADATA_FIELDS:
        if key in fields:
            setattr(workflow, key, fields[key])
    if changed:
        for key in VERSIONED_FIELDS:
            if key in fields:
                setattr(workflow, key, fields[key])
        workflow.version = (requested_version if relabelled
                            else bump_patch_version(workflow.version))
        latest = session.scalar(select(func.max(WorkflowVersion.revision))
                                .where(WorkflowVersion.workflow_id == workflow.id)) or 0
        _add_version(session, workflow, latest + 1, actor)
        if "workflow_data" in fields:
            mirror_graph(session, workflow.id, workflow.workflow_data)
    workflow.updated_by = actor
    workflow.updated_at = func.clock_timestamp()
    session.flush()
    return workflow


def delete_workflow(session: Session, workflow: Workflow, *, cascade: bool) -> int:
    """Delete a workflow; with instances, only when `cascade` (they go with it).

    Returns the number of instances deleted with it.

    Raises:
        ConflictError: the workflow has instances and `cascade` is false.
    """
    instances = session.scalar(select(func.count()).select_from(WorkflowInstance)
                               .where(WorkflowInstance.workflow_id == workflow.id)) or 0
    if instances and not cascade:
        raise ConflictError(
            f"the workflow has {instances} instance(s); delete with ?cascade=true to remove "
            "them too", details={"instances": instances})
    session.delete(workflow)
    session.flush()
    return instances
