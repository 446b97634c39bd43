"""`flowyard db upgrade`: apply the database migrations and install the built-in templates."""

from __future__ import annotations

import click

from api.commands.settings_loader import load_settings
from models.settings import SettingsError


@click.group()
def db() -> None:
    """Database schema commands."""


@db.command()
def upgrade() -> None:
    """Apply every pending migration to DATABASE_URL and add missing built-in templates."""
    from api.templates_seed import install_library
    from migrations import runner

    settings = load_settings()
    try:
        url = settings.require_database_url()
    except SettingsError as error:
        raise click.ClickException(str(error)) from None
    runner.upgrade(url)
    installed = install_library(settings)
    if installed:
        click.echo(f"installed built-in templates: {', '.join(installed)}")
    click.echo("database is up to date")
