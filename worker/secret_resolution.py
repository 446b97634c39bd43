"""Resolve `{"$secret": "NAME"}` references in config values and redact secret values; no I/O.

The worker resolves references just before a node runs (the lookup reads the secret store),
and passes every value it resolved to `redact` before anything is recorded, logged or sent as
an event: step input/output, error messages, log fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from engine.nodetypes import SECRET_KEY, is_secret_ref

REDACTED = "[REDACTED]"


class SecretResolutionError(Exception):
    """A secret reference could not be resolved (the step fails permanently)."""


class MissingSecretError(SecretResolutionError):
    """A referenced secret does not exist."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} is not defined (create it with POST /api/secrets)")
        self.name = name


def resolve_secrets(value: Any, lookup: Callable[[str], str]) -> tuple[Any, frozenset[str]]:
    """Replace every secret reference in `value` with the secret's plaintext.

    Returns the resolved copy and the set of plaintext values used, which the caller must
    hand to `redact` for everything it records. `lookup(name)` returns the plaintext and
    raises `LookupError` (e.g. KeyError) when the name is unknown.

    Raises:
        MissingSecretError: naming the first secret `lookup` does not know.
    """
    used: set[str] = set()
    cache: dict[str, str] = {}

    def fetch(name: str) -> str:
        if name not in cache:
            try:
                cache[name] = lookup(name)
            except LookupError:
                raise MissingSecretError(name) from None
        used.add(cache[name])
        return cache[name]

    def walk(item: Any) -> Any:
        if is_secret_ref(item):
            return fetch(item[SECRET_KEY])
        if isinstance(item, dict):
            return {key: walk(inner) for key, inner in item.items()}
        if isinstance(item, list | tuple):
            return [walk(inner) for inner in item]
        return item

    resolved = walk(value)
    return resolved, frozenset(used)


def _variants(secret_values: Iterable[str]) -> list[str]:
    """The forms a secret takes in text: raw, JSON-escaped, URL-encoded; longest first."""
    forms: set[str] = set()
    for secret in secret_values:
        if not secret:
            continue
        forms.add(secret)
        forms.add(json.dumps(secret)[1:-1])
        forms.add(json.dumps(secret, ensure_ascii=False)[1:-1])
        forms.add(quote(secret, safe=""))
        forms.add(quote(secret))
    return sorted((form for form in forms if form), key=len, reverse=True)


def redact(value: Any, secret_values: Iterable[str]) -> Any:
    """A copy of `value` with every occurrence of each secret value replaced by "[REDACTED]".

    Walks dicts (keys and values), lists and tuples; strings are scrubbed; bytes are scrubbed
    when they decode as UTF-8. Other scalars are returned as they are.
    """
    forms = _variants(secret_values)
    if not forms:
        return value
    return _scrub(value, forms)


def redact_text(text: str, secret_values: Iterable[str]) -> str:
    """`redact` for a single string (log lines, error messages)."""
    forms = _variants(secret_values)
    return _scrub_str(text, forms) if forms else text


def _scrub(value: Any, forms: list[str]) -> Any:
    if isinstance(value, str):
        return _scrub_str(value, forms)
    if isinstance(value, dict):
        return {_scrub(key, forms): _scrub(item, forms) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item, forms) for item in value]
    if isinstance(value, bytes):
        try:
            return _scrub_str(value.decode("utf-8"), forms).encode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _scrub_str(text: str, forms: list[str]) -> str:
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text
