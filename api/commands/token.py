"""`flowyard token create`: issue an API token from the command line (bootstrap, no API needed).

Must not print the token anywhere but the last line of its own output.
"""

from __future__ import annotations

import re

import click

from api.commands.settings_loader import load_settings
from api.schemas.tokens import ROLE_PATTERN
from models.settings import SettingsError


@click.group()
def token() -> None:
    """API tokens."""


@token.command()
@click.option("--role", "roles", multiple=True, required=True,
              help="viewer, operator, editor, admin, or an approval role (repeatable)")
@click.option("--name", default="cli", show_default=True, help="who the token is for")
def create(roles: tuple[str, ...], name: str) -> None:
    """Create a token in DATABASE_URL and print it (it is shown only this once)."""
    from api.auth import issue_token
    from models.db import make_engine, make_session_factory, transaction

    settings = load_settings()
    try:
        settings.require_database_url()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    for role in roles:
        if not re.fullmatch(ROLE_PATTERN, role):
            raise click.BadParameter(
                f"invalid role {role!r} (1-100 letters, digits, '_', '.', ':' or '-')",
                param_hint="--role")
    if not 1 <= len(name) <= 100:
        raise click.BadParameter("the name must be 1-100 characters", param_hint="--name")
    engine = make_engine(settings, pool_size=1, max_overflow=0)
    try:
        with transaction(make_session_factory(engine)) as session:
            row, secret = issue_token(session, name=name, roles=list(roles),
                                      created_by="flowyard token create")
            token_id, token_roles = row.id, list(row.roles)
    finally:
        engine.dispose()
    click.echo(f"created token {token_id} for {name!r} with roles {', '.join(token_roles)}",
               err=True)
    click.echo(secret)
