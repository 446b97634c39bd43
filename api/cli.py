"""The `flowyard` command: a click group whose sub-commands live in api/commands/."""

from __future__ import annotations

import click

from api.commands import db, run, scheduler, secrets, serve, token, up, worker, worker_health


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="flowyard")
def cli() -> None:
    """Flowyard: distributed workflow execution on Celery and PostgreSQL."""


cli.add_command(db.db)
cli.add_command(up.up)
cli.add_command(run.run)
cli.add_command(serve.api)
cli.add_command(serve.flower)
cli.add_command(worker_health.worker_health)
cli.add_command(worker.worker)
cli.add_command(scheduler.scheduler)
cli.add_command(secrets.secrets)
cli.add_command(token.token)


def main() -> None:
    cli()
