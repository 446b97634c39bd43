"""Secret store against real PostgreSQL: encryption at rest, rotation, missing keys."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.secret_store import (
    InvalidSecretError,
    MissingSecretKeyError,
    SecretDecryptError,
    SecretNotFoundError,
    delete_secret,
    ensure_secret_keys,
    find_secret,
    list_secrets,
    put_secret,
    read_secret_value,
    rotate_all,
)
from models.security import Secret
from models.settings import Settings


@pytest.fixture
def keys() -> tuple[str, str]:
    return Fernet.generate_key().decode(), Fernet.generate_key().decode()


def test_values_are_stored_encrypted_and_read_back(db_session: Session, settings: Settings,
                                                   keys: tuple[str, str]) -> None:
    with_key = settings.replace(secret_keys=(keys[0],))
    secret, created = put_secret(db_session, with_key, "API_TOKEN", "s3cr3t-value",
                                 description="ticketing", actor="alice")
    assert created
    raw = db_session.execute(select(Secret.ciphertext).where(Secret.name == "API_TOKEN")).scalar()
    assert b"s3cr3t-value" not in bytes(raw)
    assert read_secret_value(db_session, with_key, "API_TOKEN") == "s3cr3t-value"
    again, created = put_secret(db_session, with_key, "API_TOKEN", "new-value")
    assert not created and again.id == secret.id
    assert read_secret_value(db_session, with_key, "API_TOKEN") == "new-value"
    rows, total = list_secrets(db_session)
    assert total == 1 and [row.name for row in rows] == ["API_TOKEN"]
    assert delete_secret(db_session, "API_TOKEN") is True
    assert delete_secret(db_session, "API_TOKEN") is False
    assert find_secret(db_session, "API_TOKEN") is None
    with pytest.raises(SecretNotFoundError):
        read_secret_value(db_session, with_key, "API_TOKEN")


def test_rotation_reencrypts_with_the_first_key(db_session: Session, settings: Settings,
                                                 keys: tuple[str, str]) -> None:
    old, new = keys
    put_secret(db_session, settings.replace(secret_keys=(old,)), "A", "alpha")
    put_secret(db_session, settings.replace(secret_keys=(old,)), "B", "beta")
    both = settings.replace(secret_keys=(new, old))
    assert read_secret_value(db_session, both, "A") == "alpha"  # any key decrypts
    assert rotate_all(db_session, both) == 2
    only_new = settings.replace(secret_keys=(new,))
    assert read_secret_value(db_session, only_new, "A") == "alpha"
    assert read_secret_value(db_session, only_new, "B") == "beta"
    with pytest.raises(SecretDecryptError):
        read_secret_value(db_session, settings.replace(secret_keys=(old,)), "A")


def test_missing_key_is_a_clear_error(db_session: Session, settings: Settings,
                                      keys: tuple[str, str]) -> None:
    no_keys = settings.replace(secret_keys=())
    ensure_secret_keys(db_session, no_keys)  # nothing stored: fine to start without keys
    with pytest.raises(MissingSecretKeyError, match="FLOWYARD_SECRET_KEYS"):
        put_secret(db_session, no_keys, "A", "alpha")
    put_secret(db_session, settings.replace(secret_keys=(keys[0],)), "A", "alpha")
    with pytest.raises(MissingSecretKeyError, match="1 secret"):
        ensure_secret_keys(db_session, no_keys)
    with pytest.raises(MissingSecretKeyError):
        read_secret_value(db_session, no_keys, "A")
    with pytest.raises(MissingSecretKeyError):
        rotate_all(db_session, no_keys)


@pytest.mark.parametrize(("name", "value"), [("", "v"), ("1ABC", "v"), ("a b", "v"),
                                             ("A" * 101, "v"), ("OK", ""),
                                             ("OK", "x" * (64 * 1024 + 1))])
def test_bad_names_and_values_are_rejected(db_session: Session, settings: Settings,
                                           keys: tuple[str, str], name: str, value: str) -> None:
    with pytest.raises(InvalidSecretError):
        put_secret(db_session, settings.replace(secret_keys=(keys[0],)), name, value)
