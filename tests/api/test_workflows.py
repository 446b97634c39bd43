"""/api/workflows against real PostgreSQL: round trips, validation, versions, mirror, delete."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from models.instance import WorkflowInstance
from models.security import AuditLogEntry
from models.workflow import Workflow, WorkflowEdge, WorkflowNode, WorkflowVersion
from tests.api.workflow_documents import chain_workflow, triage_workflow

Headers = dict[str, str]
UTC_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _create(client: FlaskClient, headers: Headers, document: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/api/workflows", json=document, headers=headers)
    assert response.status_code == 201, response.json
    body: dict[str, Any] = response.json
    return body


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _mirror(factory: sessionmaker[Session], workflow_id: str) -> tuple[set[Any], set[Any]]:
    with factory() as session:
        nodes = {(n.node_id, n.node_type, n.label, n.position_x, n.position_y,
                  _canon(n.configuration), n.is_enabled)
                 for n in session.scalars(select(WorkflowNode)
                                          .where(WorkflowNode.workflow_id == workflow_id))}
        edges = {(e.edge_id, e.source_node_id, e.target_node_id, e.source_handle,
                  e.target_handle, e.edge_type, _canon(e.conditions), e.is_enabled)
                 for e in session.scalars(select(WorkflowEdge)
                                          .where(WorkflowEdge.workflow_id == workflow_id))}
    return nodes, edges


def _expected_mirror(data: dict[str, Any]) -> tuple[set[Any], set[Any]]:
    nodes = {(n["id"], n["type"], n["data"].get("label", n["id"]),
              round(n["position"]["x"]), round(n["position"]["y"]),
              _canon(n["data"].get("config")), n["data"].get("enabled", True))
             for n in data["nodes"]}
    edges = set()
    for e in data["edges"]:
        condition = (e.get("data") or {}).get("condition")
        edges.add((e["id"], e["source"], e["target"], e.get("sourceHandle"),
                   e.get("targetHandle"), e.get("type", "smoothstep"),
                   _canon({"condition": condition} if condition is not None else None),
                   (e.get("data") or {}).get("enabled", True)))
    return nodes, edges


def _count(factory: sessionmaker[Session], model: Any) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_create_then_get_round_trips_the_document(client: FlaskClient, editor: Headers,
                                                  viewer: Headers) -> None:
    document = triage_workflow()
    created = _create(client, editor, document)
    for key, value in document.items():
        assert created[key] == value, key
    uuid.UUID(created["id"])
    assert created["created_by"] == created["updated_by"] == "eddie-editor"
    assert UTC_Z.match(created["created_at"]) and UTC_Z.match(created["updated_at"])
    fetched = client.get(f"/api/workflows/{created['id']}", headers=viewer)
    assert fetched.status_code == 200
    assert fetched.json == created
    assert fetched.json["workflow_data"] == document["workflow_data"]


def test_defaults_for_optional_fields(client: FlaskClient, editor: Headers) -> None:
    created = _create(client, editor, chain_workflow("minimal", 2))
    assert (created["category"], created["version"], created["is_active"],
            created["is_template"], created["tags"], created["configuration"]) == (
        "custom", "1.0.0", True, False, [], {})


def test_create_writes_revision_one_and_points_at_it(
        client: FlaskClient, editor: Headers, session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    with session_factory() as session:
        workflow = session.get(Workflow, uuid.UUID(created["id"]))
        assert workflow is not None
        versions = session.scalars(select(WorkflowVersion)
                                   .where(WorkflowVersion.workflow_id == workflow.id)).all()
        assert [(v.revision, v.version, v.created_by) for v in versions] == [
            (1, "1.0.0", "eddie-editor")]
        assert workflow.current_version_id == versions[0].id
        assert versions[0].workflow_data == created["workflow_data"]


def test_mirror_matches_after_create_and_after_update(
        client: FlaskClient, editor: Headers, session_factory: sessionmaker[Session]) -> None:
    document = triage_workflow()
    created = _create(client, editor, document)
    assert _mirror(session_factory, created["id"]) == _expected_mirror(document["workflow_data"])

    data = document["workflow_data"]
    data["nodes"][2]["data"]["enabled"] = False
    data["nodes"].append({"id": "log", "type": "noop", "position": {"x": 600, "y": 10},
                          "data": {}})
    data["edges"].append({"id": "e3", "source": "page", "target": "log",
                          "data": {"condition": "output.status == 'sent'"}})
    del data["edges"][0]["type"]
    data["edges"][0]["targetHandle"] = "in"
    updated = client.put(f"/api/workflows/{created['id']}", json={"workflow_data": data},
                         headers=editor)
    assert updated.status_code == 200, updated.json
    assert updated.json["workflow_data"] == data
    nodes, edges = _mirror(session_factory, created["id"])
    expected_nodes, expected_edges = _expected_mirror(data)
    assert edges == expected_edges
    # A node without a label is mirrored with its id as the label.
    assert nodes == expected_nodes


def test_update_of_the_definition_makes_a_new_version(
        client: FlaskClient, editor: Headers, token_for: Callable[..., Headers],
        session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    data = created["workflow_data"]
    data["nodes"][0]["position"] = {"x": 5, "y": 5}
    other_editor = token_for("editor", name="second-editor")
    response = client.put(f"/api/workflows/{created['id']}",
                          json={"workflow_data": data, "description": "moved"},
                          headers=other_editor)
    assert response.status_code == 200
    body = response.json
    assert (body["version"], body["description"]) == ("1.0.1", "moved")
    assert (body["created_by"], body["updated_by"]) == ("eddie-editor", "second-editor")
    assert body["updated_at"] >= created["updated_at"]
    assert body["name"] == created["name"]  # fields left out keep their value
    response = client.put(f"/api/workflows/{created['id']}",
                          json={"configuration": {"max_retries": 0}}, headers=editor)
    assert response.json["version"] == "1.0.2"
    with session_factory() as session:
        workflow = session.get(Workflow, uuid.UUID(created["id"]))
        assert workflow is not None
        versions = session.scalars(select(WorkflowVersion)
                                   .where(WorkflowVersion.workflow_id == workflow.id)
                                   .order_by(WorkflowVersion.revision)).all()
        assert [(v.revision, v.version) for v in versions] == [
            (1, "1.0.0"), (2, "1.0.1"), (3, "1.0.2")]
        assert workflow.current_version_id == versions[-1].id
        # Earlier revisions keep the definition they had.
        assert versions[0].workflow_data == created["workflow_data"] | {
            "nodes": triage_workflow()["workflow_data"]["nodes"]}
        assert versions[1].workflow_data == data
        assert versions[2].configuration == {"max_retries": 0}


def test_metadata_only_update_keeps_the_version(
        client: FlaskClient, editor: Headers, session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    response = client.put(f"/api/workflows/{created['id']}",
                          json={"is_active": False, "tags": ["x"], "name": "renamed",
                                "workflow_data": created["workflow_data"]},
                          headers=editor)
    assert response.status_code == 200
    assert (response.json["is_active"], response.json["tags"], response.json["name"],
            response.json["version"]) == (False, ["x"], "renamed", "1.0.0")
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(WorkflowVersion).where(
            WorkflowVersion.workflow_id == uuid.UUID(created["id"]))) == 1


def test_explicit_version_is_used_for_the_new_revision(client: FlaskClient,
                                                       editor: Headers) -> None:
    created = _create(client, editor, triage_workflow())
    data = created["workflow_data"]
    data["nodes"][1]["data"]["label"] = "Severe?"
    response = client.put(f"/api/workflows/{created['id']}",
                          json={"workflow_data": data, "version": "2.0.0"}, headers=editor)
    assert response.json["version"] == "2.0.0"


def test_invalid_document_lists_every_problem_and_stores_nothing(
        client: FlaskClient, editor: Headers, session_factory: sessionmaker[Session]) -> None:
    before = (_count(session_factory, Workflow), _count(session_factory, WorkflowNode),
              _count(session_factory, WorkflowVersion))
    document = triage_workflow()
    data = document["workflow_data"]
    data["nodes"].append({"id": "check", "type": "noop", "position": {"x": 0, "y": 0},
                          "data": {}})  # duplicate id
    data["nodes"].append({"id": "mystery", "type": "teleport", "position": {"x": 0, "y": 0},
                          "data": {}})  # unregistered type
    data["edges"].append({"id": "e9", "source": "page", "target": "ghost"})  # dangling
    data["nodes"][1]["data"]["config"]["expression"] = "input.severity >="  # bad CEL
    data["nodes"].append({"id": "x" * 101, "type": "noop", "position": {"x": 0, "y": 0},
                          "data": {}})  # too long to mirror
    response = client.post("/api/workflows", json=document, headers=editor)
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "validation_error"
    problems = error["details"]["problems"]
    named = {(p["node_id"], p["edge_id"]) for p in problems}
    assert ("check", None) in named
    assert ("mystery", None) in named
    assert (None, "e9") in named
    assert ("x" * 101, None) in named
    assert len(problems) >= 5
    assert all(set(p) == {"code", "message", "node_id", "edge_id", "field"} for p in problems)
    after = (_count(session_factory, Workflow), _count(session_factory, WorkflowNode),
             _count(session_factory, WorkflowVersion))
    assert after == before


def test_invalid_update_changes_nothing(client: FlaskClient, editor: Headers,
                                        viewer: Headers) -> None:
    created = _create(client, editor, triage_workflow())
    bad = {"nodes": [{"id": "a", "type": "noop"}, {"id": "b", "type": "noop"}],
           "edges": [{"id": "ab", "source": "a", "target": "b"},
                     {"id": "ba", "source": "b", "target": "a"}]}  # a cycle, no entry node
    response = client.put(f"/api/workflows/{created['id']}",
                          json={"workflow_data": bad, "name": "changed"}, headers=editor)
    assert response.status_code == 422
    assert len(response.json["error"]["details"]["problems"]) >= 1
    assert client.get(f"/api/workflows/{created['id']}", headers=viewer).json == created


def test_bad_configuration_is_a_problem(client: FlaskClient, editor: Headers) -> None:
    document = triage_workflow()
    document["configuration"] = {"max_retries": -3}
    response = client.post("/api/workflows", json=document, headers=editor)
    assert response.status_code == 422
    assert response.json["error"]["details"]["problems"]


def test_bad_notify_templates_are_problems_at_save_time(client: FlaskClient,
                                                         editor: Headers) -> None:
    document = triage_workflow()
    notice = {"channel": "email", "recipients": ["ops@example.com"]}
    document["configuration"] = {"notify": {
        "on_failure": [{**notice, "subject": "{{ inptu.name }} failed",
                        "message": "{{ instance.error }}"}],
        "on_completion": [{**notice, "message": "done {{ (( }}"}],
        # `approval` exists only for approval notices.
        "on_approval_requested": [{**notice, "message": "{{ approval.message }}"}],
    }}
    response = client.post("/api/workflows", json=document, headers=editor)
    assert response.status_code == 422
    problems = response.json["error"]["details"]["problems"]
    assert sorted((p["code"], p["field"]) for p in problems) == [
        ("invalid_template", "configuration.notify.on_completion[0].message"),
        ("invalid_template", "configuration.notify.on_failure[0].subject"),
    ]
    document["configuration"]["notify"]["on_failure"][0]["subject"] = "{{ approval.id }}"
    document["configuration"]["notify"]["on_completion"][0]["message"] = "{{ instance.id }}"
    response = client.post("/api/workflows", json=document, headers=editor)
    assert response.status_code == 422
    assert [p["field"] for p in response.json["error"]["details"]["problems"]] == [
        "configuration.notify.on_failure[0].subject"]
    document["configuration"]["notify"]["on_failure"][0]["subject"] = "{{ nodes }}"
    assert client.post("/api/workflows", json=document, headers=editor).status_code == 201


def test_unknown_top_level_field_is_422(client: FlaskClient, editor: Headers) -> None:
    document = triage_workflow() | {"owner": "me"}
    response = client.post("/api/workflows", json=document, headers=editor)
    assert response.status_code == 422
    assert "owner" in response.json["error"]["details"]["fields"]


def test_missing_required_fields_are_422(client: FlaskClient, editor: Headers) -> None:
    response = client.post("/api/workflows", json={"description": "no name"}, headers=editor)
    assert response.status_code == 422
    assert set(response.json["error"]["details"]["fields"]) >= {"name", "workflow_data"}


def test_malformed_json_is_400(client: FlaskClient, editor: Headers) -> None:
    response = client.post("/api/workflows", data='{"name": "x", "workflow_data": {',
                           headers={**editor, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"
    assert "Traceback" not in response.get_data(as_text=True)


def test_non_finite_numbers_are_malformed_json(client: FlaskClient, editor: Headers) -> None:
    body = ('{"name": "x", "workflow_data": {"nodes": [{"id": "a", "type": "noop", '
            '"position": {"x": Infinity, "y": NaN}}], "edges": []}}')
    response = client.post("/api/workflows", data=body,
                           headers={**editor, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "bad_request"


def test_nul_characters_and_deep_nesting_are_400(client: FlaskClient, editor: Headers) -> None:
    headers = {**editor, "Content-Type": "application/json"}
    nul = '{"name": "a\\u0000b", "workflow_data": {"nodes": [], "edges": []}}'
    deep = '{"name": "x", "workflow_data": {"nodes": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    for body in (nul, deep):
        response = client.post("/api/workflows", data=body, headers=headers)
        assert response.status_code == 400, body[:40]
        assert response.json["error"]["code"] == "bad_request"
    # An escaped backslash before "u0000" is an ordinary string.
    ok = chain_workflow("back\\u0000slash", 1)
    assert client.post("/api/workflows", json=ok, headers=editor).status_code == 201


def test_missing_workflow_is_404(client: FlaskClient, viewer: Headers, editor: Headers) -> None:
    missing = uuid.uuid4()
    assert client.get(f"/api/workflows/{missing}", headers=viewer).status_code == 404
    response = client.put(f"/api/workflows/{missing}", json={"name": "x"}, headers=editor)
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.delete(f"/api/workflows/{missing}", headers=editor).status_code == 404


def test_list_is_paginated_newest_first(client: FlaskClient, editor: Headers,
                                        viewer: Headers) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = [_create(client, editor, chain_workflow(f"page-{tag}-{i}", 2))["id"]
           for i in range(5)]
    first = client.get(f"/api/workflows?q={tag}&limit=2", headers=viewer).json
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [w["id"] for w in first["items"]] == ids[::-1][:2]
    rest = client.get(f"/api/workflows?q={tag}&limit=2&offset=2", headers=viewer).json
    last = client.get(f"/api/workflows?q={tag}&limit=2&offset=4", headers=viewer).json
    assert [w["id"] for w in rest["items"] + last["items"]] == ids[::-1][2:]
    default = client.get("/api/workflows", headers=viewer).json
    assert default["limit"] == 50 and default["offset"] == 0


def test_list_limits_are_enforced(client: FlaskClient, viewer: Headers) -> None:
    for query in ("limit=0", "limit=501", "offset=-1", "limit=abc", "q=a%00b", "category=%00"):
        response = client.get(f"/api/workflows?{query}", headers=viewer)
        assert response.status_code == 422, query
    assert client.get("/api/workflows?limit=500", headers=viewer).status_code == 200


def test_list_filters(client: FlaskClient, editor: Headers, viewer: Headers) -> None:
    tag = uuid.uuid4().hex[:8]
    a = _create(client, editor, chain_workflow(f"{tag} alpha", 1) | {"category": f"c-{tag}"})
    b = _create(client, editor, chain_workflow(f"{tag} beta", 1) | {"is_active": False})
    c = _create(client, editor, chain_workflow(f"{tag} 100%_gamma", 1) | {"is_template": True})

    def ids(query: str) -> list[str]:
        response = client.get(f"/api/workflows?{query}", headers=viewer)
        assert response.status_code == 200, response.json
        return [w["id"] for w in response.json["items"]]

    assert ids(f"category=c-{tag}") == [a["id"]]
    assert ids(f"q={tag}&is_active=false") == [b["id"]]
    assert ids(f"q={tag}&is_template=true") == [c["id"]]
    assert ids(f"q={tag.upper()}%20ALPHA") == [a["id"]]
    # LIKE wildcards in q are literal characters.
    assert ids("q=100%25_") == [c["id"]]
    assert ids(f"q={tag}&is_active=true&is_template=false") == [a["id"]]


def test_delete_without_instances(client: FlaskClient, editor: Headers, viewer: Headers,
                                  session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    response = client.delete(f"/api/workflows/{created['id']}", headers=editor)
    assert response.status_code == 204
    assert client.get(f"/api/workflows/{created['id']}", headers=viewer).status_code == 404
    assert _mirror(session_factory, created["id"]) == (set(), set())


def _add_instance(factory: sessionmaker[Session], workflow_id: str) -> uuid.UUID:
    with factory() as session:
        workflow = session.get(Workflow, uuid.UUID(workflow_id))
        assert workflow is not None
        instance = WorkflowInstance(workflow_id=workflow.id, status="completed",
                                    workflow_version_id=workflow.current_version_id)
        session.add(instance)
        session.commit()
        return instance.id


def test_delete_with_instances_needs_cascade(client: FlaskClient, editor: Headers,
                                             viewer: Headers,
                                             session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    instance_id = _add_instance(session_factory, created["id"])
    refused = client.delete(f"/api/workflows/{created['id']}", headers=editor)
    assert refused.status_code == 409
    assert refused.json["error"]["code"] == "conflict"
    assert refused.json["error"]["details"] == {"instances": 1}
    assert client.get(f"/api/workflows/{created['id']}", headers=viewer).status_code == 200
    response = client.delete(f"/api/workflows/{created['id']}?cascade=true", headers=editor)
    assert response.status_code == 204
    with session_factory() as session:
        assert session.get(WorkflowInstance, instance_id) is None
    assert client.get(f"/api/workflows/{created['id']}", headers=viewer).status_code == 404


def test_writes_are_audited(client: FlaskClient, editor: Headers,
                            session_factory: sessionmaker[Session]) -> None:
    created = _create(client, editor, triage_workflow())
    client.put(f"/api/workflows/{created['id']}", json={"name": "renamed"}, headers=editor)
    client.delete(f"/api/workflows/{created['id']}", headers=editor)
    with session_factory() as session:
        rows = session.scalars(select(AuditLogEntry)
                               .where(AuditLogEntry.resource_id == created["id"])
                               .order_by(AuditLogEntry.id)).all()
    assert [(r.action, r.actor, r.outcome, r.resource_type) for r in rows] == [
        ("POST /api/workflows", "eddie-editor", "success", "workflows"),
        ("PUT /api/workflows/<uuid:workflow_id>", "eddie-editor", "success", "workflows"),
        ("DELETE /api/workflows/<uuid:workflow_id>", "eddie-editor", "success", "workflows"),
    ]


def test_large_workflow_is_accepted(client: FlaskClient, editor: Headers,
                                    session_factory: sessionmaker[Session]) -> None:
    document = chain_workflow("large", 1000, edges_per_node=5)
    assert len(document["workflow_data"]["edges"]) == 4985
    created = _create(client, editor, document)
    nodes, edges = _mirror(session_factory, created["id"])
    assert (len(nodes), len(edges)) == (1000, 4985)


def test_too_many_nodes_is_422(client: FlaskClient, editor: Headers) -> None:
    response = client.post("/api/workflows", json=chain_workflow("huge", 1001), headers=editor)
    assert response.status_code == 422
    codes = [p["code"] for p in response.json["error"]["details"]["problems"]]
    assert "too_many_nodes" in codes
