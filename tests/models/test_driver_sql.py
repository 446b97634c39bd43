"""A transaction sent whole (`fetch_in_transaction`) commits all of it, or none of it; an
explicit one (`explicit_transaction`) commits with a read sent after its COMMIT; a pipeline
(`pipeline_sent_whole`) sends its statements when it ends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors
from sqlalchemy import text
from sqlalchemy.orm import Session

from models.db import autocommit, make_engine
from models.driver_sql import (
    ExplicitTransaction,
    explicit_transaction,
    fetch_in_transaction,
    fetch_one,
    pipeline_sent_whole,
    run,
)


@pytest.fixture
def table(settings: Any) -> Any:
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    name = f"driver_sql_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {name} (id integer PRIMARY KEY)"))
    try:
        yield engine, name
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE {name}"))
        engine.dispose()


def _ids(engine: Any, name: str) -> list[int]:
    with engine.connect() as connection:
        return list(connection.execute(text(f"SELECT id FROM {name} ORDER BY id")).scalars())


@contextmanager
def _explicit(engine: Any) -> Iterator[ExplicitTransaction]:
    with autocommit(engine) as connection, explicit_transaction(connection) as transaction:
        yield transaction


def _driver_url(engine: Any) -> str:
    """The engine's database, as a URL psycopg connects to directly."""
    return str(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))


def _seen_elsewhere(engine: Any, name: str) -> list[int]:
    """The ids another connection sees (committed ones), while the pool's one is taken."""
    with psycopg.connect(_driver_url(engine)) as other:
        return [row[0] for row in other.execute(f"SELECT id FROM {name} ORDER BY id")]


def test_each_statement_answers_and_all_of_them_commit(table: Any) -> None:
    engine, name = table
    with autocommit(engine) as connection:
        first, second, third = fetch_in_transaction(connection, [
            (f"INSERT INTO {name} VALUES (%(id)s) RETURNING id", {"id": 1}),
            (f"INSERT INTO {name} VALUES (%(id)s)", {"id": 2}),  # returns no rows
            (f"SELECT count(*) AS n FROM {name}", {}),
        ])
    assert [row.id for row in first] == [1] and second == []
    assert third[0].n == 2  # a statement sees the rows of those before it
    assert _ids(engine, name) == [1, 2]


def test_a_failing_statement_rolls_back_the_others_and_the_connection_goes_on(
        table: Any) -> None:
    engine, name = table
    with autocommit(engine) as connection:
        with pytest.raises(errors.UniqueViolation):
            fetch_in_transaction(connection, [
                (f"INSERT INTO {name} VALUES (%(id)s)", {"id": 2}),
                (f"INSERT INTO {name} VALUES (%(id)s)", {"id": 2}),
            ])
        # The same pooled connection (pool of one) is usable at once, outside any transaction.
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    assert _ids(engine, name) == []


def test_it_refuses_a_connection_that_is_not_autocommit(table: Any) -> None:
    engine, name = table
    with engine.connect() as connection, pytest.raises(ValueError, match="autocommit"):
        fetch_in_transaction(connection, [(f"SELECT 1 FROM {name}", {})])


def test_it_refuses_a_connection_inside_a_transaction(table: Any) -> None:
    engine, name = table
    with _explicit(engine) as transaction:
        with pytest.raises(ValueError, match="outside any transaction"):
            fetch_in_transaction(transaction.connection, [(f"SELECT 1 FROM {name}", {})])


def test_an_explicit_transaction_commits_then_reads_in_a_transaction_of_its_own(
        table: Any) -> None:
    engine, name = table
    with _explicit(engine) as transaction:
        run(transaction.connection, f"INSERT INTO {name} VALUES (1)", {})
        inside = fetch_one(transaction.connection, "SELECT now() AS at", {})
        transaction.read_after_commit(
            f"SELECT now() AS at, (SELECT count(*) FROM {name}) AS n", {})
        assert _seen_elsewhere(engine, name) == []  # not committed yet
    assert inside is not None and transaction.rows_after_commit is not None
    (after,) = transaction.rows_after_commit
    assert after.n == 1 and after.at > inside.at  # now() is each transaction's start
    assert _ids(engine, name) == [1]


def test_an_explicit_transaction_rolls_back_what_raised_and_the_connection_goes_on(
        table: Any) -> None:
    engine, name = table
    with pytest.raises(RuntimeError), _explicit(engine) as transaction:
        run(transaction.connection, f"INSERT INTO {name} VALUES (1)", {})
        transaction.read_after_commit("SELECT 1", {})
        raise RuntimeError("planning failed")
    assert transaction.rows_after_commit is None
    with _explicit(engine) as transaction:  # the pool's one connection, reused
        run(transaction.connection, f"INSERT INTO {name} VALUES (2)", {})
    assert _ids(engine, name) == [2]


def test_a_session_joins_an_explicit_transaction_and_does_not_end_it(table: Any) -> None:
    engine, name = table
    with pytest.raises(RuntimeError), _explicit(engine) as transaction:
        with Session(bind=transaction.connection) as session:
            session.execute(text(f"INSERT INTO {name} VALUES (1)"))
            session.flush()
        run(transaction.connection, f"INSERT INTO {name} VALUES (2)", {})
        raise RuntimeError("after the session closed")
    assert _ids(engine, name) == []  # the session's write went with the rest
    with _explicit(engine) as transaction:
        with Session(bind=transaction.connection) as session:
            session.execute(text(f"INSERT INTO {name} VALUES (3)"))
        run(transaction.connection, f"INSERT INTO {name} VALUES (4)", {})
    assert _ids(engine, name) == [3, 4]


def test_a_read_that_fails_after_the_commit_leaves_it_committed(table: Any) -> None:
    engine, name = table
    with _explicit(engine) as transaction:
        run(transaction.connection, f"INSERT INTO {name} VALUES (1)", {})
        transaction.read_after_commit("SELECT 1 / 0", {})
    assert transaction.rows_after_commit is None
    assert _ids(engine, name) == [1]


def _advisory_lock_held(url: str, key: int) -> bool:
    with psycopg.connect(url) as other:
        row = other.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                            " AND objid = %s AND granted", (key,)).fetchone()
        return bool(row and row[0])


def test_a_pipeline_sends_its_statements_together_when_it_ends(table: Any) -> None:
    """Nothing runs while the block queues statements: psycopg's own pipeline would have
    sent the lock at once, and the server would hold it within the half second."""
    engine, _ = table
    url = _driver_url(engine)
    key = uuid.uuid4().int & 0x7FFFFFFF  # a lock no other test or run takes
    with psycopg.connect(url, autocommit=True) as connection:
        with pipeline_sent_whole(connection):
            connection.execute("SELECT pg_advisory_lock(%s)", (key,))
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                assert not _advisory_lock_held(url, key), "sent before the pipeline ended"
                time.sleep(0.05)
        assert _advisory_lock_held(url, key)


def test_a_read_inside_the_pipeline_sends_what_is_queued_first(table: Any) -> None:
    engine, name = table
    with psycopg.connect(_driver_url(engine), autocommit=True) as connection:
        with pipeline_sent_whole(connection):
            connection.execute(f"INSERT INTO {name} (id) VALUES (7)")
            cursor = connection.execute(f"SELECT id FROM {name}")
            assert cursor.fetchone() == (7,)
            cursor = connection.execute(f"SELECT count(*) FROM {name}")
        assert cursor.fetchone() == (1,)
    assert _ids(engine, name) == [7]
