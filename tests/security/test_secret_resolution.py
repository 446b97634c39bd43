"""Pure tests of secret reference resolution and redaction."""

from __future__ import annotations

import pytest

from engine.nodetypes import secret_names
from worker.secret_resolution import (
    REDACTED,
    MissingSecretError,
    redact,
    redact_text,
    resolve_secrets,
)

STORE = {"API_TOKEN": "tok-3f9a8b", "DB_PASS": 'pa"ss/word'}


def test_references_are_resolved_anywhere_in_a_config() -> None:
    config = {
        "url": "https://api.example.com",
        "headers": {"Authorization": {"$secret": "API_TOKEN"}},
        "body": [{"password": {"$secret": "DB_PASS"}}, {"$secret": "API_TOKEN"}],
        "not_a_ref": {"$secret": "API_TOKEN", "other": 1},
    }
    resolved, used = resolve_secrets(config, STORE.__getitem__)
    assert resolved["headers"]["Authorization"] == "tok-3f9a8b"
    assert resolved["body"] == [{"password": 'pa"ss/word'}, "tok-3f9a8b"]
    assert resolved["not_a_ref"] == {"$secret": "API_TOKEN", "other": 1}
    assert used == frozenset(STORE.values())
    assert config["headers"]["Authorization"] == {"$secret": "API_TOKEN"}  # input untouched
    assert set(secret_names(config)) == {"API_TOKEN", "DB_PASS"}


def test_missing_secret_names_it() -> None:
    with pytest.raises(MissingSecretError, match="'NOPE'"):
        resolve_secrets({"a": {"$secret": "NOPE"}}, STORE.__getitem__)


def test_redact_scrubs_nested_values_keys_and_encoded_forms() -> None:
    record = {
        "status": 401,
        "body": {"echo": "Bearer tok-3f9a8b", "tok-3f9a8b": ["x tok-3f9a8b y"]},
        "raw": '{"password": "pa\\"ss/word"}',
        "url": "https://h/?p=pa%22ss%2Fword",
        "bytes": b"tok-3f9a8b",
        "n": 3,
    }
    clean = redact(record, STORE.values())
    flat = repr(clean)
    assert "tok-3f9a8b" not in flat and "pa" + '"ss' not in flat and "ss%2Fword" not in flat
    assert clean["body"]["echo"] == f"Bearer {REDACTED}"
    assert clean["body"][REDACTED] == [f"x {REDACTED} y"]
    assert clean["n"] == 3
    assert redact_text("error: tok-3f9a8b rejected", STORE.values()) == \
        f"error: {REDACTED} rejected"
    assert redact(record, [""]) == record
