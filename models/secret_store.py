"""Encrypted secrets: MultiFernet encryption, CRUD queries and key rotation; never commits.

Keys come from `Settings.secret_keys` (FLOWYARD_SECRET_KEYS): the first key encrypts, every
key decrypts, and `rotate_all` re-encrypts every value with the first key so an old key can
then be removed. Plaintext leaves this module only through `read_secret_value`, which only
the worker calls, and `open_sealed` (webhook signature checks); listing returns names and
metadata. Webhook trigger secrets are stored sealed in their configuration JSON as
`{"fernet": "<token>"}` and rotated with the named secrets.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from engine.statuses import TriggerType
from models.security import Secret
from models.settings import Settings
from models.workflow import WorkflowTrigger

SECRET_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$")
MAX_SECRET_BYTES = 64 * 1024
SEALED_KEY = "fernet"
WEBHOOK_SECRET_FIELD = "secret"


class SecretStoreError(Exception):
    """Root of the secret store's errors."""


class MissingSecretKeyError(SecretStoreError):
    """No FLOWYARD_SECRET_KEYS configured while secrets must be encrypted or read."""

    def __init__(self, detail: str = "") -> None:
        message = (
            "FLOWYARD_SECRET_KEYS is not set: secrets cannot be encrypted or read. Set it to one "
            "or more comma-separated Fernet keys (first encrypts, all decrypt)"
        )
        super().__init__(f"{message}; {detail}" if detail else message)


class SecretDecryptError(SecretStoreError):
    """A stored value cannot be decrypted with any configured key."""


class SecretNotFoundError(SecretStoreError, LookupError):
    """No secret has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name!r} is not defined")
        self.name = name


class InvalidSecretError(SecretStoreError, ValueError):
    """A secret name or value the store does not accept."""


def make_cipher(settings: Settings) -> MultiFernet:
    """The MultiFernet for the configured keys.

    Raises:
        MissingSecretKeyError: when no key is configured.
    """
    if not settings.secret_keys:
        raise MissingSecretKeyError()
    return MultiFernet([Fernet(key.encode()) for key in settings.secret_keys])


def encrypt_value(settings: Settings, plaintext: str) -> bytes:
    """Encrypt with the first configured key."""
    return make_cipher(settings).encrypt(plaintext.encode("utf-8"))


def decrypt_value(settings: Settings, ciphertext: bytes) -> str:
    """Decrypt with whichever configured key matches.

    Raises:
        MissingSecretKeyError: no key configured.
        SecretDecryptError: no configured key decrypts the value.
    """
    try:
        return make_cipher(settings).decrypt(bytes(ciphertext)).decode("utf-8")
    except InvalidToken:
        raise SecretDecryptError(
            "a stored secret cannot be decrypted with any key in FLOWYARD_SECRET_KEYS "
            "(was the key that encrypted it removed?)"
        ) from None


def seal(settings: Settings, plaintext: str) -> dict[str, str]:
    """The JSON form of an encrypted value (for JSONB columns such as trigger configuration).

    Raises:
        MissingSecretKeyError: no key configured.
    """
    return {SEALED_KEY: encrypt_value(settings, plaintext).decode("ascii")}


def is_sealed(value: object) -> bool:
    return isinstance(value, dict) and isinstance(value.get(SEALED_KEY), str)


def open_sealed(settings: Settings, value: object) -> str:
    """The plaintext of a `seal` result; a bare string is a value stored before sealing existed.

    Raises:
        MissingSecretKeyError, SecretDecryptError: keys missing or wrong.
    """
    if isinstance(value, str):
        return value
    if not is_sealed(value):
        raise SecretDecryptError("a stored secret is not in a known form")
    assert isinstance(value, dict)
    return decrypt_value(settings, value[SEALED_KEY].encode("ascii"))


def validate_secret(name: str, value: str) -> None:
    """Raises InvalidSecretError when the name or value is not acceptable."""
    if not SECRET_NAME_PATTERN.fullmatch(name):
        raise InvalidSecretError(
            "a secret name is 1-100 characters: letters, digits, '_', '.', '-', "
            "not starting with a digit, '.' or '-'"
        )
    if not value:
        raise InvalidSecretError("a secret value must not be empty")
    if len(value.encode("utf-8")) > MAX_SECRET_BYTES:
        raise InvalidSecretError(f"a secret value is at most {MAX_SECRET_BYTES} bytes")


def find_secret(session: Session, name: str) -> Secret | None:
    return session.scalars(select(Secret).where(Secret.name == name)).one_or_none()


def put_secret(
    session: Session,
    settings: Settings,
    name: str,
    value: str,
    *,
    description: str | None = None,
    actor: str | None = None,
) -> tuple[Secret, bool]:
    """Create the secret, or replace its value and description; returns (secret, created).

    Raises:
        InvalidSecretError: bad name or value.
        MissingSecretKeyError: no key configured.
    """
    validate_secret(name, value)
    ciphertext = encrypt_value(settings, value)
    secret = session.scalars(
        select(Secret).where(Secret.name == name).with_for_update()
    ).one_or_none()
    created = secret is None
    if secret is None:
        secret = Secret(name=name, ciphertext=ciphertext, description=description,
                        created_by=actor)
        session.add(secret)
    else:
        secret.ciphertext = ciphertext
        secret.description = description
    session.flush()
    return secret, created


def delete_secret(session: Session, name: str) -> bool:
    """Delete by name; False when there was none."""
    result = session.execute(delete(Secret).where(Secret.name == name).returning(Secret.id))
    return result.first() is not None


def list_secrets(session: Session, *, limit: int = 50, offset: int = 0) -> tuple[
    Sequence[Secret], int
]:
    """Secrets newest first (callers expose names and metadata only) and the total count."""
    total = session.scalar(select(func.count()).select_from(Secret)) or 0
    rows = session.scalars(
        select(Secret).order_by(Secret.created_at.desc(), Secret.name).limit(limit).offset(offset)
    ).all()
    return rows, total


def read_secret_value(session: Session, settings: Settings, name: str) -> str:
    """The plaintext of a secret, for the worker only.

    Raises:
        SecretNotFoundError: no such secret (also a LookupError).
        MissingSecretKeyError, SecretDecryptError: keys missing or wrong.
    """
    secret = find_secret(session, name)
    if secret is None:
        raise SecretNotFoundError(name)
    return decrypt_value(settings, secret.ciphertext)


def rotate_all(session: Session, settings: Settings) -> int:
    """Re-encrypt every secret with the first configured key; returns how many were rewritten.

    Rows are locked while rotating so a concurrent `put_secret` cannot be overwritten with
    a stale value.

    Raises:
        MissingSecretKeyError: no key configured.
        SecretDecryptError: a value no configured key decrypts (nothing is changed then,
            as long as the caller rolls back).
    """
    cipher = make_cipher(settings)
    secrets = session.scalars(select(Secret).order_by(Secret.name).with_for_update()).all()
    for secret in secrets:
        try:
            secret.ciphertext = cipher.rotate(bytes(secret.ciphertext))
        except InvalidToken:
            raise SecretDecryptError(
                f"secret {secret.name!r} cannot be decrypted with any key in "
                "FLOWYARD_SECRET_KEYS; nothing was rotated"
            ) from None
    session.flush()
    return len(secrets) + rotate_webhook_secrets(session, cipher)


def _webhooks_with_secrets(session: Session, *, lock: bool) -> Sequence[WorkflowTrigger]:
    statement = (
        select(WorkflowTrigger)
        .where(WorkflowTrigger.trigger_type == TriggerType.WEBHOOK.value,
               WorkflowTrigger.configuration.has_key(WEBHOOK_SECRET_FIELD))
        .order_by(WorkflowTrigger.id)
    )
    return session.scalars(statement.with_for_update() if lock else statement).all()


def rotate_webhook_secrets(session: Session, cipher: MultiFernet) -> int:
    """Re-encrypt every webhook trigger secret with the first key; returns how many.

    A secret still stored in clear (written before secrets were sealed) is encrypted now.

    Raises:
        SecretDecryptError: a secret no configured key decrypts.
    """
    rotated = 0
    for trigger in _webhooks_with_secrets(session, lock=True):
        configuration = dict(trigger.configuration or {})
        value = configuration.get(WEBHOOK_SECRET_FIELD)
        if not value:
            continue
        try:
            if isinstance(value, str):
                token = cipher.encrypt(value.encode("utf-8"))
            elif is_sealed(value):
                token = cipher.rotate(value[SEALED_KEY].encode("ascii"))
            else:
                raise InvalidToken
        except InvalidToken:
            raise SecretDecryptError(
                f"the secret of webhook trigger {trigger.id} cannot be decrypted with any key "
                "in FLOWYARD_SECRET_KEYS; nothing was rotated"
            ) from None
        # A new dict, so the JSONB column is seen as changed.
        configuration[WEBHOOK_SECRET_FIELD] = {SEALED_KEY: token.decode("ascii")}
        trigger.configuration = configuration
        rotated += 1
    session.flush()
    return rotated


def ensure_secret_keys(session: Session, settings: Settings) -> None:
    """Fail fast at process start when secrets are stored but no key is configured.

    Raises:
        MissingSecretKeyError: secrets exist and FLOWYARD_SECRET_KEYS is empty.
    """
    if settings.secret_keys:
        return
    count = session.scalar(select(func.count()).select_from(Secret)) or 0
    if count:
        raise MissingSecretKeyError(f"{count} secret(s) are stored in the database")
    sealed = sum(1 for trigger in _webhooks_with_secrets(session, lock=False)
                 if is_sealed((trigger.configuration or {}).get(WEBHOOK_SECRET_FIELD)))
    if sealed:
        raise MissingSecretKeyError(f"{sealed} webhook trigger secret(s) are stored encrypted")
