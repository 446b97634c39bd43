"""`flowyard secrets rotate` as a real process against the session database."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session

from models.secret_store import put_secret, read_secret_value
from models.security import Secret
from models.settings import Settings

NAMES = ("ROTATE_CLI_A", "ROTATE_CLI_B")
FLOWYARD = str(Path(sys.executable).with_name("flowyard"))


def _run(database_url: str, keys: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "DATABASE_URL": database_url}
    if keys is not None:
        env["FLOWYARD_SECRET_KEYS"] = keys
    return subprocess.run([FLOWYARD, "secrets", "rotate"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.fixture
def stored(db_engine: Engine, settings: Settings) -> Iterator[tuple[str, str]]:
    """Two committed secrets under an old key (this command commits, so clean up after)."""
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with Session(db_engine) as session, session.begin():
        for name in NAMES:
            put_secret(session, settings.replace(secret_keys=(old,)), name, f"value-of-{name}")
    try:
        yield old, new
    finally:
        with Session(db_engine) as session, session.begin():
            session.execute(delete(Secret).where(Secret.name.in_(NAMES)))


def _ciphertexts(db_engine: Engine) -> dict[str, bytes]:
    with Session(db_engine) as session:
        rows = session.execute(select(Secret.name, Secret.ciphertext)
                               .where(Secret.name.in_(NAMES))).all()
    return {name: bytes(ciphertext) for name, ciphertext in rows}


def test_rotate_moves_every_secret_to_the_first_key(
    stored: tuple[str, str], db_engine: Engine, settings: Settings, database_url: str,
) -> None:
    old, new = stored
    result = _run(database_url, f"{new},{old}")
    assert result.returncode == 0, result.stderr
    # Other tests may have committed secrets of their own; ours are two of them.
    assert int(result.stdout.split("rotated ", 1)[1].split()[0]) >= 2
    only_new = settings.replace(secret_keys=(new,))
    with Session(db_engine) as session:
        for name in NAMES:
            assert read_secret_value(session, only_new, name) == f"value-of-{name}"
    assert "value-of-" not in result.stdout + result.stderr


def test_rotate_without_a_usable_key_fails_clearly_and_changes_nothing(
    stored: tuple[str, str], db_engine: Engine, database_url: str,
) -> None:
    before = _ciphertexts(db_engine)
    missing = _run(database_url, None)
    assert missing.returncode != 0
    assert "FLOWYARD_SECRET_KEYS is not set" in missing.stderr
    wrong = _run(database_url, Fernet.generate_key().decode())
    assert wrong.returncode != 0
    assert "cannot be decrypted" in wrong.stderr
    assert _ciphertexts(db_engine) == before


@pytest.mark.parametrize("command", [["worker", "-Q", "noop", "-c", "1"],
                                     ["api", "--host", "127.0.0.1", "--port", "0"]])
def test_processes_refuse_to_start_without_keys_when_secrets_exist(
    stored: tuple[str, str], database_url: str, redis_url: str, command: list[str],
) -> None:
    import socket

    if command[0] == "api":
        with socket.socket() as probe:  # a free loopback port, in case the check failed
            probe.bind(("127.0.0.1", 0))
            command[-1] = str(probe.getsockname()[1])
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "DATABASE_URL": database_url, "REDIS_URL": redis_url}
    result = subprocess.run([FLOWYARD, *command], env=env, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode != 0
    assert "FLOWYARD_SECRET_KEYS is not set" in result.stderr
    assert "secret(s) are stored" in result.stderr
