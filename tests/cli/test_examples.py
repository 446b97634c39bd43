"""The example workflows in examples/ are valid documents that `flowyard run` accepts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.commands.run import load_document
from engine.nodetypes import BUILTIN_NODE_TYPES
from engine.validation import validate_workflow

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))


def test_there_are_the_three_documented_examples() -> None:
    assert [path.name for path in EXAMPLES] == [
        "data-pipeline.json", "incident-fanout.json", "vulnerability-triage.json",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.stem)
def test_example_is_a_valid_workflow(path: Path) -> None:
    document = load_document(path)
    problems = validate_workflow(document["workflow_data"], BUILTIN_NODE_TYPES,
                                 configuration=document.get("configuration"))
    assert problems == []


def test_triage_has_a_condition_and_an_approval() -> None:
    nodes = json.loads((EXAMPLES[2]).read_text())["workflow_data"]["nodes"]
    assert {"condition", "approval"} <= {node["type"] for node in nodes}


def test_pipeline_retries_and_fanout_notifies_in_parallel() -> None:
    pipeline = json.loads(EXAMPLES[0].read_text())["workflow_data"]
    assert any(node["data"].get("retries", 0) > 0 for node in pipeline["nodes"])
    fanout = json.loads(EXAMPLES[1].read_text())["workflow_data"]
    notifiers = [node["id"] for node in fanout["nodes"] if node["type"] == "notification"]
    assert len(notifiers) >= 3
    sources = {edge["source"] for edge in fanout["edges"] if edge["target"] in notifiers}
    assert sources == {"compose"}


def test_an_exported_document_is_accepted_without_its_export_only_fields(tmp_path: Path) -> None:
    document = json.loads(EXAMPLES[0].read_text())
    exported = {"format": "flowyard.workflow/v1", **document,
                "triggers": [{"trigger_type": "manual", "configuration": {}}]}
    path = tmp_path / "exported.json"
    path.write_text(json.dumps(exported))
    assert load_document(path) == document
