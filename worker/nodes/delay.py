"""The `delay` node: a database timer; it never sleeps in a worker slot."""

from __future__ import annotations

from typing import Any

from engine.document import as_number
from worker.errors import PermanentNodeError
from worker.nodes import with_run
from worker.results import Suspend


def run(config: dict[str, Any], context: Any) -> Suspend:
    seconds = as_number(config.get("seconds"))
    if seconds is None or seconds < 0:
        raise PermanentNodeError(f"delay seconds must be a non-negative number, got "
                                 f"{config.get('seconds')!r}")
    waited: Any = int(seconds) if float(seconds).is_integer() else seconds
    return Suspend(output={"waited_seconds": waited}, timer_seconds=seconds)


NODE_TYPE = with_run("delay", run)
