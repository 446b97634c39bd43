"""`flowyard up` gives its children a secret key: the data dir's own (0600) unless one is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from api.commands.up import Platform, _service_env
from api.embedded import EmbeddedError, ensure_secret_key, prepare_data_dir
from models.settings import Settings

# Service URLs set, so `_service_env` starts no embedded server.
URLS = {"database_url": "postgresql://postgres@127.0.0.1:5432/unused",
        "broker_url": "redis://127.0.0.1:6379/15"}


def test_without_keys_up_makes_one_key_file_and_reuses_it(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWYARD_SECRET_KEYS", raising=False)
    data = prepare_data_dir(tmp_path / "data")
    keyless = settings.replace(secret_keys=(), **URLS)

    first = _service_env(Platform(data), keyless)
    second = _service_env(Platform(data), keyless)

    key = first["FLOWYARD_SECRET_KEYS"]
    Fernet(key.encode())  # a usable Fernet key
    assert second["FLOWYARD_SECRET_KEYS"] == key
    assert data.secret_key.read_text().strip() == key
    assert data.secret_key.stat().st_mode & 0o777 == 0o600


def test_a_configured_key_is_used_and_no_file_is_made(
        tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    configured = Fernet.generate_key().decode()
    monkeypatch.setenv("FLOWYARD_SECRET_KEYS", configured)
    data = prepare_data_dir(tmp_path / "data")

    env = _service_env(Platform(data), settings.replace(secret_keys=(configured,), **URLS))

    assert env["FLOWYARD_SECRET_KEYS"] == configured
    assert not data.secret_key.exists()


def test_a_damaged_key_file_is_a_clear_error(tmp_path: Path) -> None:
    data = prepare_data_dir(tmp_path / "data")
    data.secret_key.write_text("not a key\n")

    with pytest.raises(EmbeddedError, match="FLOWYARD_SECRET_KEYS"):
        ensure_secret_key(data)
