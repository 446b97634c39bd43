"""Portable documents leave secret values out but keep secret references."""

from __future__ import annotations

from types import SimpleNamespace

from api.portable import FORMAT, export_document, split_document, strip_secret_values


def _node(node_id: str, config: dict[str, object]) -> dict[str, object]:
    return {"id": node_id, "type": "notification", "position": {"x": 0, "y": 0},
            "data": {"label": node_id, "config": config}}


def test_plain_secrets_go_and_references_stay() -> None:
    document = {"nodes": [
        _node("plain", {"channel": "webhook", "secret": "s3cret", "message": "m"}),
        _node("ref", {"channel": "webhook", "secret": {"$secret": "HOOK_KEY"},
                      "headers": {"Authorization": {"$secret": "API_TOKEN"}}}),
    ], "edges": []}

    stripped = strip_secret_values(document)

    assert stripped["nodes"][0]["data"]["config"] == {"channel": "webhook", "message": "m"}
    assert stripped["nodes"][1]["data"]["config"]["secret"] == {"$secret": "HOOK_KEY"}
    assert stripped["nodes"][1]["data"]["config"]["headers"] == {
        "Authorization": {"$secret": "API_TOKEN"}}
    # The stored document itself is untouched.
    assert document["nodes"][0]["data"]["config"]["secret"] == "s3cret"


def test_export_and_split_round_trip() -> None:
    workflow = SimpleNamespace(
        name="w", description=None, category="custom", version="1.0.3", tags=["a"],
        is_active=True, is_template=False, configuration={}, id="not exported",
        workflow_data={"nodes": [_node("n", {"secret": "x", "message": "m"})], "edges": []})
    trigger = SimpleNamespace(trigger_type="webhook", trigger_source="git", is_active=True,
                              configuration={"secret": "webhook-secret"})

    document = export_document(workflow, [trigger], revision=3)

    assert document["format"] == FORMAT and document["revision"] == 3
    assert "description" not in document and "id" not in document
    assert document["triggers"] == [{"trigger_type": "webhook", "trigger_source": "git",
                                     "configuration": {}, "is_active": False}]
    body, triggers = split_document(document)
    assert set(body) == {"name", "category", "version", "tags", "is_active", "is_template",
                         "configuration", "workflow_data"}
    assert triggers == document["triggers"]
