"""Alembic migrations; `migrations.runner` applies them without Flask."""
