"""A transaction sent whole (`fetch_in_transaction`) commits all of it, or none of it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from psycopg import errors
from sqlalchemy import text

from models.db import autocommit, make_engine
from models.driver_sql import fetch_in_transaction


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
