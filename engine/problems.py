"""What validation reports: one `Problem` per thing wrong with a document. Pure data."""

from __future__ import annotations

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
