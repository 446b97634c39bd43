"""Installing portable documents as workflows: the built-in library seed and imports.

`seed_builtin_templates` inserts each library template once (keyed by
`workflows.builtin_key`), so it is safe to run on every start and from several processes.
`store_document` stores one checked portable document with its triggers. Both validate like a
create and never commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.library import load_library
from api.portable import split_document
from api.resources.triggers import checked_configuration, schedule_next_fire
from api.schemas.templates import PortableDocumentSchema
from api.workflow_store import create_workflow, validate_definition
from engine.nodetypes import NodeType
from models.settings import Settings
from models.triggers import create_trigger
from models.workflow import Workflow

SEED_ACTOR = "flowyard"


def store_document(session: Session, document: dict[str, Any], *, actor: str,
                   settings: Settings, node_types: Mapping[str, NodeType],
                   overrides: Mapping[str, Any] | None = None) -> Workflow:
    """Store a loaded portable document (PortableDocumentSchema) and its triggers.

    Raises:
        UnprocessableError: the definition or a trigger configuration is invalid.
    """
    body, triggers = split_document(document)
    body.update(overrides or {})
    validate_definition(body["workflow_data"], body.get("configuration"),
                        node_types=node_types, settings=settings)
    checked = [(trigger, checked_configuration(trigger["trigger_type"],
                                               trigger.get("configuration") or {}))
               for trigger in triggers]
    workflow = create_workflow(session, body, actor)
    for trigger, configuration in checked:
        create_trigger(
            session, workflow.id, trigger_type=trigger["trigger_type"],
            trigger_source=trigger.get("trigger_source"), configuration=configuration,
            is_active=trigger["is_active"],
            next_fire_at=schedule_next_fire(session, trigger["trigger_type"], configuration,
                                            trigger["is_active"]),
        )
    return workflow


def seed_builtin_templates(session: Session, *, settings: Settings,
                           node_types: Mapping[str, NodeType]) -> list[str]:
    """Insert the library templates not yet present; returns the keys inserted."""
    present = set(session.scalars(select(Workflow.builtin_key)
                                  .where(Workflow.builtin_key.is_not(None))))
    inserted = []
    for template in load_library():
        if template.key in present:
            continue
        document = PortableDocumentSchema().load(template.document)
        try:
            with session.begin_nested():
                workflow = store_document(session, document, actor=SEED_ACTOR,
                                          settings=settings, node_types=node_types)
                workflow.builtin_key = template.key
                session.flush()
        except IntegrityError:
            continue  # another process seeded this template at the same moment
        inserted.append(template.key)
    return inserted


def install_library(settings: Settings) -> list[str]:
    """Seed the built-in templates into `settings.database_url` (a process start-up step)."""
    from api.app import default_node_types
    from models.db import make_engine, make_session_factory, transaction

    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with transaction(make_session_factory(engine)) as session:
            return seed_builtin_templates(session, settings=settings,
                                          node_types=default_node_types())
    finally:
        engine.dispose()
