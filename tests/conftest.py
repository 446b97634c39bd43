"""Shared fixtures: a private PostgreSQL database and Redis database per test session.

Each pytest session creates its own database (`flowyard_test_<random>`) on the server named by
FLOWYARD_TEST_POSTGRES_URL and leases one Redis database index on FLOWYARD_TEST_REDIS_URL, so
several sessions can run on one machine at once. Engine tests use none of these fixtures.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_ADMIN_URL = os.environ.get(
    "FLOWYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_SERVER_URL = os.environ.get("FLOWYARD_TEST_REDIS_URL", "redis://127.0.0.1:6379")
_LEASE_SECONDS = 4 * 3600


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def _new_database() -> Iterator[str]:
    """An empty database of its own (`flowyard_test_<random>`), dropped when the block ends."""
    import psycopg

    name = f"flowyard_test_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(POSTGRES_ADMIN_URL, name)
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _new_migrated_database() -> Iterator[str]:
    """A fresh database migrated with `alembic upgrade head`, dropped when the block ends."""
    from migrations import runner

    with _new_database() as url:
        runner.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database migrated with `alembic upgrade head`, dropped at the end."""
    with _new_migrated_database() as url:
        yield url


@pytest.fixture
def own_database_url() -> Iterator[str]:
    """A migrated database of this test's own, for a test that runs the reconciler (it works
    on every instance it finds) or leaves instances running (they take admission slots)."""
    with _new_migrated_database() as url:
        yield url


@pytest.fixture
def empty_database_url() -> Iterator[str]:
    """A database of this test's own, with no tables (nothing migrated), dropped after it."""
    with _new_database() as url:
        yield url


@contextmanager
def _leased_redis_database(holder: str) -> Iterator[str]:
    """A Redis database index of its own, flushed before and after use."""
    import redis

    control = redis.Redis.from_url(f"{REDIS_SERVER_URL}/0")
    token = secrets.token_hex(8)
    for index in range(1, 16):
        key = f"flowyard:test-lease:{index}"
        if control.set(key, token, nx=True, ex=_LEASE_SECONDS):
            break
    else:
        pytest.fail(f"no free Redis database index (1-15) for {holder}")
    url = f"{REDIS_SERVER_URL}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        if control.get(key) == token.encode():
            control.delete(key)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database index leased for this session and flushed before and after use."""
    with _leased_redis_database("this test session") as url:
        yield url


@pytest.fixture
def own_redis_url() -> Iterator[str]:
    """A Redis database index of this test's own, for a test whose worker would take what
    other tests left in the session's queues (and leave theirs unfinished), or that leaves
    sends of its own."""
    with _leased_redis_database("this test") as url:
        yield url


@pytest.fixture(scope="session")
def secret_key() -> str:
    """One Fernet key per test session: rows committed by one module stay readable by all."""
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str):  # type: ignore[no-untyped-def]
    from models.settings import Settings

    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        reconcile_interval_seconds=0.5,
        step_lease_seconds=5,
    )


@pytest.fixture(scope="session")
def db_engine(settings):  # type: ignore[no-untyped-def]
    from models.db import make_engine

    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine):  # type: ignore[no-untyped-def]
    """A session inside a transaction that is rolled back after the test."""
    from sqlalchemy.orm import Session

    connection = db_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
