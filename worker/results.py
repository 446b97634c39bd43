"""What a node handler may return besides a plain output: a chosen handle or a suspension.

A handler returns a JSON value (completed, default handle), a `NodeResult` (completed with a
chosen handle), or a `Suspend` (the step gives its worker slot back and waits: on a database
timer, or until `worker.orchestrator.finish_waiting_step` is called).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NodeResult:
    output: Any
    handle: str | None = None


@dataclass(frozen=True)
class Suspend:
    """Hold the step without a worker slot.

    `timer_seconds` set: the reconciler completes the step with `output` once it is due.
    `timer_seconds` None: the step becomes `waiting_approval` until someone finishes it.
    """

    output: Any = None
    timer_seconds: float | None = None
