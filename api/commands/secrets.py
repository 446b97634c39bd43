"""`flowyard secrets rotate`: re-encrypt every stored secret with the first configured key.

Must never print a secret value.
"""

from __future__ import annotations

import click

from api.commands.settings_loader import load_settings
from models.secret_store import (
    MissingSecretKeyError,
    SecretStoreError,
    ensure_secret_keys,
    rotate_all,
)
from models.settings import Settings, SettingsError


def rotate_secrets(settings: Settings) -> int:
    """Rotate every secret in one transaction (all or nothing); returns how many."""
    from models.db import make_engine, make_session_factory, transaction

    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with transaction(make_session_factory(engine)) as session:
            return rotate_all(session, settings)
    finally:
        engine.dispose()


def check_secret_keys(settings: Settings) -> None:
    """Stop a starting process when secrets are stored but FLOWYARD_SECRET_KEYS is empty.

    A database that cannot be reached or is not migrated yet is left for the process itself
    to report; this check only speaks about keys.

    Raises:
        click.ClickException: naming FLOWYARD_SECRET_KEYS.
    """
    if settings.secret_keys or not settings.database_url:
        return
    from sqlalchemy.exc import SQLAlchemyError

    from models.db import make_engine, make_session_factory

    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with make_session_factory(engine)() as session:
            ensure_secret_keys(session, settings)
    except MissingSecretKeyError as error:
        raise click.ClickException(f"configuration error: {error}") from None
    except SQLAlchemyError:
        return
    finally:
        engine.dispose()


@click.group()
def secrets() -> None:
    """Encrypted secrets (values are managed through /api/secrets)."""


@secrets.command()
def rotate() -> None:
    """Re-encrypt every secret with the first key of FLOWYARD_SECRET_KEYS.

    Put the new key first and keep the old ones after it; once this succeeds the old keys
    can be removed from FLOWYARD_SECRET_KEYS.
    """
    settings = load_settings()
    try:
        settings.require_database_url()
        count = rotate_secrets(settings)
    except (SettingsError, SecretStoreError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"rotated {count} secret(s) to the first key of FLOWYARD_SECRET_KEYS")
