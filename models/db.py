"""Database engine and session factory built from settings; no global engine."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from models.settings import Settings


def sqlalchemy_url(database_url: str) -> str:
    """Map a plain postgresql:// URL to the psycopg 3 driver SQLAlchemy should use."""
    scheme, sep, rest = database_url.partition("://")
    if scheme in ("postgres", "postgresql"):
        return f"postgresql+psycopg{sep}{rest}"
    return database_url


def make_engine(settings: Settings, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    return create_engine(
        sqlalchemy_url(settings.require_database_url()),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        future=True,
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, future=True)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back on any exception."""
    with factory() as session, session.begin():
        yield session
