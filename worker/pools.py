"""Which Celery pool a worker runs its steps in: `prefork`, or `threads` for pure steps only.

A prefork worker hands each message from its main process to a child process over a pipe,
and the result comes back the same way; that is about a fifth of the workers' CPU for a
step that does little else. Its children are what Celery's time limits need: a child stuck
past its step's limit is killed and replaced. A thread cannot be killed, and Celery applies
no time limits in a threads pool at all.

Pure node types (`NodeType.pure`: trigger, noop, transform, condition) need none: they do
no I/O of their own, and their expressions and templates run under an evaluation budget
(`engine.cel_budget`, `engine.cel_values`), so a pure step cannot hang. A worker whose
queues carry only pure types may therefore run them in threads; any other queue stays on
prefork, where a stuck step can be stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from worker.dispatch import queue_of

PREFORK = "prefork"
THREADS = "threads"
POOLS = (PREFORK, THREADS)


class PoolChoiceError(ValueError):
    """A pool that cannot run the queues it was given."""


def all_queues(node_types: Mapping[str, Any]) -> list[str]:
    """Every node type's queue, sorted."""
    return sorted({queue_of(node_types, name) for name in node_types})


def pure_queues(node_types: Mapping[str, Any]) -> list[str]:
    """The queues that carry pure node types only, sorted."""
    carried: dict[str, bool] = {}
    for name, node_type in node_types.items():
        queue = queue_of(node_types, name)
        carried[queue] = carried.get(queue, True) and bool(getattr(node_type, "pure", False))
    return sorted(queue for queue, pure in carried.items() if pure)


def check_pool(pool: str, queues: Iterable[str], node_types: Mapping[str, Any]) -> None:
    """Raises PoolChoiceError when `pool` cannot run every one of `queues`.

    Only `threads` is restricted: to the queues of pure node types. A queue no node type is
    routed to (the notifications' own, say) is not one of them.
    """
    if pool not in POOLS:
        raise PoolChoiceError(f"unknown pool {pool!r} (choose from {', '.join(POOLS)})")
    if pool != THREADS:
        return
    allowed = set(pure_queues(node_types))
    refused = sorted(set(queues) - allowed)
    if refused:
        raise PoolChoiceError(
            f"the threads pool runs only the queues of pure node types "
            f"({', '.join(sorted(allowed))}), not {', '.join(refused)}: a thread cannot be "
            f"stopped at a step's time limit. Run those queues on a prefork worker "
            f"(--pool prefork, the default).")
