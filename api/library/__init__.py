"""The built-in template library: portable workflow documents shipped as package data.

Each `<key>.json` here is a `flowyard.workflow/v1` document with `is_template: true`; the key
(file name) becomes `workflows.builtin_key`, so seeding inserts each template once. Must not
touch the database (seeding lives in api/templates_seed.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class LibraryTemplate:
    key: str
    document: dict[str, Any]


def load_library() -> list[LibraryTemplate]:
    """Every built-in template, sorted by key."""
    templates = []
    for entry in sorted(resources.files(__name__).iterdir(), key=lambda item: item.name):
        if entry.name.endswith(".json"):
            document = json.loads(entry.read_text(encoding="utf-8"))
            templates.append(LibraryTemplate(key=entry.name.removesuffix(".json"),
                                             document=document))
    return templates
