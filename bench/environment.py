"""A throw-away PostgreSQL database and Redis database index for one benchmark invocation."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
import redis

POSTGRES_ADMIN_URL = os.environ.get(
    "FLOWYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_SERVER_URL = os.environ.get("FLOWYARD_BENCH_REDIS_URL", "redis://127.0.0.1:6379")


@dataclass(frozen=True)
class BenchEnvironment:
    database_url: str
    redis_url: str

    def child_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(DATABASE_URL=self.database_url, REDIS_URL=self.redis_url,
                   CELERY_BROKER_URL=self.redis_url, LOG_FORMAT="json")
        env.update(extra)
        return env


@contextmanager
def bench_environment() -> Iterator[BenchEnvironment]:
    """Create a migrated database and lease a Redis index; remove both afterwards."""
    from migrations import runner

    name = f"flowyard_bench_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{POSTGRES_ADMIN_URL.rpartition('/')[0]}/{name}"
    control = redis.Redis.from_url(f"{REDIS_SERVER_URL}/0")
    token = secrets.token_hex(8)
    index = next((i for i in range(15, 0, -1)
                  if control.set(f"flowyard:test-lease:{i}", token, nx=True, ex=3600)), None)
    if index is None:
        raise RuntimeError("no free Redis database index (1-15) for the benchmark")
    redis_url = f"{REDIS_SERVER_URL}/{index}"
    redis.Redis.from_url(redis_url).flushdb()
    try:
        runner.upgrade(database_url)
        yield BenchEnvironment(database_url=database_url, redis_url=redis_url)
    finally:
        redis.Redis.from_url(redis_url).flushdb()
        control.delete(f"flowyard:test-lease:{index}")
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def processes(commands: Sequence[Sequence[str]], env: dict[str, str]) -> Iterator[None]:
    """Run each command as a child process for the duration of the block; stop them after."""
    children = [subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL) for command in commands]
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def python_command(*args: str) -> list[str]:
    return [sys.executable, *args]
