"""What validation reports: one `Problem` per thing wrong with a document. Pure data."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a document, naming the node or edge it concerns."""

    code: str
    message: str
    node_id: str | None = None
    edge_id: str | None = None
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def name_of(value: Any) -> str | None:
    """A document's id or name field, when it is a non-empty string."""
    return value if isinstance(value, str) and value else None


def identified(raw_items: list[Any], kind: str) -> Iterator[Problem | tuple[str, dict[str, Any]]]:
    """Each item of a document's `nodes` or `edges` (`kind` "node" or "edge") as its id and
    object, and a Problem for each item that is no object, has no string id, or repeats an
    id. An item with a repeated id is still yielded: its own problems are reported too."""
    seen: set[str] = set()
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            yield Problem(f"invalid_{kind}", f"{kind} #{index} must be an object",
                          field=f"{kind}s[{index}]")
            continue
        item_id = name_of(raw.get("id"))
        if item_id is None:
            yield Problem("missing_field", f"{kind} #{index} needs a string id", field="id")
            continue
        if item_id in seen:
            yield Problem(f"duplicate_{kind}_id", f"{kind} id {item_id!r} is used twice",
                          field="id", **{f"{kind}_id": item_id})
        seen.add(item_id)
        yield item_id, raw
