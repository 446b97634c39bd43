"""Read settings from the environment for a command, turning a bad value into a one-line exit."""

from __future__ import annotations

import os

import click

from models.settings import Settings, SettingsError


def load_settings() -> Settings:
    """Settings for this process; exits with the offending variable named on a bad value."""
    try:
        return Settings.from_env(os.environ)
    except SettingsError as error:
        raise click.ClickException(f"configuration error: {error}") from None
