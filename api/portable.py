"""Portable workflow documents (`"format": "flowyard.workflow/v1"`): export and import shapes.

An exported document holds the workflow's definition and its triggers, but no ids, no
timestamps, no authors and no secret values: a node config's plain `secret` string and a
webhook trigger's `secret` are left out (`{"$secret": "NAME"}` references stay, since they
name a secret and hold none). A webhook trigger whose secret was left out is exported inactive,
so an imported copy never accepts unsigned calls until someone sets a new secret.
Must not touch the database or validate the workflow (the create path does that).
"""

from __future__ import annotations

import copy
from typing import Any

from engine.statuses import TriggerType

FORMAT = "flowyard.workflow/v1"
WORKFLOW_FIELDS = ("name", "description", "category", "version", "tags", "is_active",
                   "is_template", "configuration", "workflow_data")
TRIGGER_FIELDS = ("trigger_type", "trigger_source", "configuration", "is_active")
SECRET_KEY = "secret"


def _without_plain_secrets(config: Any) -> Any:
    if not isinstance(config, dict):
        return config
    return {key: value for key, value in config.items()
            if not (key == SECRET_KEY and not isinstance(value, dict))}


def strip_secret_values(workflow_data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document with plain secret values removed from every node config."""
    document = copy.deepcopy(workflow_data)
    for node in document.get("nodes") or []:
        data = node.get("data") if isinstance(node, dict) else None
        if isinstance(data, dict) and "config" in data:
            data["config"] = _without_plain_secrets(data["config"])
    return document


def export_trigger(trigger: Any) -> dict[str, Any]:
    configuration = dict(trigger.configuration or {})
    is_active = bool(trigger.is_active)
    if configuration.pop(SECRET_KEY, None) and trigger.trigger_type == TriggerType.WEBHOOK:
        is_active = False
    return {"trigger_type": trigger.trigger_type, "trigger_source": trigger.trigger_source,
            "configuration": configuration, "is_active": is_active}


def export_document(workflow: Any, triggers: list[Any], *,
                    revision: int | None = None) -> dict[str, Any]:
    """The portable document of a workflow (a `Workflow` row) and its triggers."""
    document: dict[str, Any] = {"format": FORMAT}
    for name in WORKFLOW_FIELDS:
        value = getattr(workflow, name)
        if value is not None:  # an unset optional field is left out, not sent as null
            document[name] = copy.deepcopy(value)
    document["workflow_data"] = strip_secret_values(workflow.workflow_data or {})
    if revision is not None:
        document["revision"] = revision
    document["triggers"] = [export_trigger(trigger) for trigger in triggers]
    return document


def split_document(document: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(workflow create body, trigger bodies) of an import document already shape-checked.

    `format` and the informative `revision` are dropped; the rest is a workflow create body.
    """
    body = {key: value for key, value in document.items()
            if key not in ("format", "revision", "triggers")}
    return body, list(document.get("triggers") or [])
