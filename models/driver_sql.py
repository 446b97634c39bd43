"""Hand-written SQL run straight on the psycopg connection beneath an Executor; never commits.

For the statements every step runs (read, claim, lock, complete, plan). SQLAlchemy's
execution layer (result metadata, parameter processing, events) costs more CPU per
statement than psycopg itself: 110-160 µs against 60 µs measured, on every statement of
every step (`python -m bench.step_cost`). These statements are plain SQL with `%(name)s`
parameters and need none of it. They run in the executor's transaction: a session's or a
connection's, or, on an autocommit connection, each statement commits on its own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import psycopg
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import namedtuple_row
from psycopg.types.json import Jsonb
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from models.db import Executor


def driver_connection(executor: Executor) -> psycopg.Connection[Any]:
    """The psycopg connection of the executor's transaction (a session begins one if needed)."""
    connection = executor.connection() if isinstance(executor, Session) else executor
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection), "models need the psycopg 3 driver"
    return driver


def fetch_one(executor: Executor, sql: str, params: Mapping[str, Any]) -> NamedTuple | None:
    """The statement's first row (columns by name), or None when it returns none."""
    with driver_connection(executor).cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def fetch_all(executor: Executor, sql: str, params: Mapping[str, Any]) -> list[NamedTuple]:
    with driver_connection(executor).cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class _SentWhole(psycopg.Pipeline):
    """psycopg's pipeline, its statements sent in one write when it syncs.

    psycopg's own sends each statement as it is executed: a write and two polls each, and
    the server wakes for every one. Here they wait in the queue until the pipeline syncs,
    or until something reads a result, then go out together (bench/RESULTS.md, item 53).
    Overrides two of psycopg's private methods: `pipeline_sent_whole` uses this class only
    where they exist, else psycopg's pipeline as it is.
    """

    def _communicate_gen(self) -> Any:
        queue = self.command_queue
        if queue and queue[-1] != self.pgconn.pipeline_sync:
            return  # an execute's: its statement waits for the sync
        self._buffer_queued()
        yield from super()._communicate_gen()

    def _fetch_gen(self, *, flush: bool) -> Any:
        self._buffer_queued()  # no result is awaited before its statement is sent
        yield from super()._fetch_gen(flush=flush)

    def _buffer_queued(self) -> None:
        """Into libpq's output buffer, all of it; the sync, or the fetch, flushes it."""
        queue = self.command_queue
        while queue:
            queue.popleft()()


_CAN_SEND_WHOLE = all(callable(getattr(psycopg.Pipeline, name, None))
                      for name in ("_communicate_gen", "_fetch_gen"))


@contextmanager
def pipeline_sent_whole(driver: psycopg.Connection[Any]) -> Iterator[None]:
    """`driver.pipeline()`, its statements sent in one write at its end (`_SentWhole`).

    Read results after the block: a read inside it sends what is queued first, and waits.
    """
    with driver.pipeline() as pipeline:
        # Only a pipeline this block opened: a nested one belongs to its outer block.
        if _CAN_SEND_WHOLE and type(pipeline) is psycopg.Pipeline and pipeline.level == 1:
            pipeline.__class__ = _SentWhole  # same object, same state: only sends differ
        yield


def fetch_pipelined(executor: Executor,
                    statements: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[NamedTuple]]:
    """Each statement's rows, the statements sent together and run in order.

    One round trip for all of them (psycopg pipeline mode). Not the transaction's BEGIN:
    psycopg sends its own BEGIN and waits for it, in pipeline mode too, so a transaction
    that starts here takes a round trip more (`fetch_in_transaction` avoids it). For
    statements whose parameters do not depend on each other's results.
    """
    driver = driver_connection(executor)
    cursors = []
    with pipeline_sent_whole(driver):
        for sql, params in statements:
            cursor = driver.cursor(row_factory=namedtuple_row)
            cursor.execute(sql, params)
            cursors.append(cursor)
    try:
        return [cursor.fetchall() for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()


def fetch_in_transaction(executor: Executor, statements: Sequence[tuple[str, Mapping[str, Any]]],
                         ) -> list[list[NamedTuple]]:
    """Each statement's rows (none for one that returns no rows), run as one transaction
    sent whole: BEGIN, the statements, COMMIT.

    One round trip (psycopg pipeline mode), for a transaction whose statements need nothing
    from each other's results. Needs an autocommit connection (`models.db.autocommit`): the
    BEGIN is ours, and the driver's own transaction handling would cost a round trip more.
    A statement that fails rolls the transaction back and raises.
    """
    driver = driver_connection(executor)
    if not driver.autocommit or driver.info.transaction_status != TransactionStatus.IDLE:
        # Inside a transaction, its COMMIT would end that one.
        raise ValueError("fetch_in_transaction needs an autocommit connection, "
                         "outside any transaction")
    cursors = []
    try:
        with pipeline_sent_whole(driver):
            driver.execute("BEGIN")
            for sql, params in statements:
                cursor = driver.cursor(row_factory=namedtuple_row)
                cursor.execute(sql, params)
                cursors.append(cursor)
            driver.execute("COMMIT")
        # Read from the result's status: `description` builds every column's object.
        return [cursor.fetchall() if _returns_rows(cursor) else [] for cursor in cursors]
    except BaseException:
        if not driver.closed and driver.info.transaction_status != TransactionStatus.IDLE:
            driver.execute("ROLLBACK")
        raise
    finally:
        for cursor in cursors:
            cursor.close()


class ExplicitTransaction:
    """A transaction whose BEGIN and COMMIT are statements sent on an autocommit connection
    (`explicit_transaction`), so that its COMMIT can carry a read in the same round trip."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._read_after: tuple[str, Mapping[str, Any]] | None = None
        self.rows_after_commit: list[NamedTuple] | None = None

    def read_after_commit(self, sql: str, params: Mapping[str, Any]) -> None:
        """Run this read right after the COMMIT, sent with it: it sees the transaction
        committed. Its rows land in `rows_after_commit`; that stays None if the read
        failed, or if the transaction did not commit."""
        self._read_after = (sql, params)

    def _commit(self, driver: psycopg.Connection[Any]) -> None:
        if self._read_after is None:
            driver.execute("COMMIT")
            return
        committing = driver.cursor()
        reading = driver.cursor(row_factory=namedtuple_row)
        try:
            with pipeline_sent_whole(driver):
                committing.execute("COMMIT")
                reading.execute(*self._read_after)
            self.rows_after_commit = reading.fetchall()
        except psycopg.Error:
            result = committing.pgresult
            if result is None or result.status != ExecStatus.COMMAND_OK:
                raise  # not committed
            # Committed: only the read failed, and the caller reads again on its own.
        finally:
            committing.close()
            reading.close()


@contextmanager
def explicit_transaction(connection: Connection) -> Iterator[ExplicitTransaction]:
    """A transaction on an autocommit connection (`models.db.autocommit`), committed when
    the block ends, rolled back if it raises; like `Engine.begin()`'s, but its COMMIT may
    carry a read that must see it committed (`ExplicitTransaction.read_after_commit`):
    one round trip where the driver's commit, then the read, take two.

    The BEGIN goes out first, alone, so every statement of the block is inside. A Session
    bound to the connection joins the transaction and never ends it, as in
    `Engine.begin()`'s. Nothing in the block may commit or roll back on its own.
    """
    driver = driver_connection(connection)
    if not driver.autocommit:
        raise ValueError("explicit_transaction needs an autocommit connection")
    with connection.begin():
        transaction = ExplicitTransaction(connection)
        driver.execute("BEGIN")
        try:
            yield transaction
            transaction._commit(driver)
        except BaseException:
            if not driver.closed and driver.info.transaction_status != TransactionStatus.IDLE:
                driver.execute("ROLLBACK")
            raise


def _returns_rows(cursor: psycopg.Cursor[Any]) -> bool:
    result = cursor.pgresult
    return result is not None and result.status == ExecStatus.TUPLES_OK


def run(executor: Executor, sql: str, params: Mapping[str, Any]) -> None:
    """A statement whose rows, if any, nobody reads."""
    with driver_connection(executor).cursor() as cursor:
        cursor.execute(sql, params)


def jsonb(value: Any) -> Jsonb | None:
    """A JSONB parameter; None stays SQL NULL (not the JSON null)."""
    return None if value is None else Jsonb(value)
