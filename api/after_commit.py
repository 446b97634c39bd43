"""The work a launch (or a control action) does after its commit: it may fail without
failing the call.

Once a launch has committed, the call has succeeded: the instance exists, and the audit
row says so. What follows (sends, an admission pass, a re-read for the answer) only hurries
along what the reconciler does anyway: it admits pending instances and sends the steps
nobody claimed. A database error there must not answer 500, or the client (a webhook's
sender retries by itself) would start the workflow again. A broker that refuses a send or a
revoke is handled where it is sent (`worker.orchestrator.apply_after_commit`,
`worker.control.after_control`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import psycopg
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Raised by the ORM and Core, and by the hand-written SQL run on the driver beneath them.
DATABASE_ERRORS = (SQLAlchemyError, psycopg.Error)


def after_commit(committed: str, work: Callable[[], T], fallback: T) -> T:
    """`work()`, or `fallback` when the database fails in it (logged, naming what was
    `committed`)."""
    try:
        return work()
    except DATABASE_ERRORS as error:
        logger.warning("%s committed, then the database failed (%s): answered as "
                       "committed; the reconciler admits pending instances and sends the "
                       "steps nobody claimed", committed, error)
        return fallback
