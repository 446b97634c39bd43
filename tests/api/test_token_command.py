"""`flowyard token create` in a real subprocess, and the token it prints working on the API."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import Engine, select

from api.app import create_app
from api.auth import hash_token
from models.db import make_session_factory
from models.security import ApiToken
from models.settings import Settings

_CLI = "from api.cli import main; main()"


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _CLI, *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    env.update(overrides)
    return env


def test_token_create_prints_a_working_token(database_url: str, settings: Settings,
                                             db_engine: Engine) -> None:
    result = _run(["token", "create", "--role", "admin", "--role", "security-lead",
                   "--name", "bootstrap"], _env(DATABASE_URL=database_url))
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip().splitlines()[-1]
    assert len(token) >= 40 and " " not in token
    factory = make_session_factory(db_engine)
    with factory() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token))
                              ).one()
        assert (row.name, row.roles) == ("bootstrap", ["admin", "security-lead"])
        assert token not in (row.token_hash, row.prefix)
    client = create_app(settings, session_factory=factory).test_client()
    response = client.get("/api/tokens", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert "token" not in response.json["items"][0]


def test_token_create_without_database_url_names_it() -> None:
    result = _run(["token", "create", "--role", "admin"], _env())
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr


def test_token_create_needs_a_role(database_url: str) -> None:
    result = _run(["token", "create"], _env(DATABASE_URL=database_url))
    assert result.returncode != 0
    assert "--role" in result.stderr


def test_token_create_rejects_a_malformed_role(database_url: str) -> None:
    result = _run(["token", "create", "--role", "has space"], _env(DATABASE_URL=database_url))
    assert result.returncode != 0
    assert "invalid role" in result.stderr
