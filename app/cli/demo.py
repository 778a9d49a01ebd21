"""``flask demo …``: the demo data that ``scripts/run.sh`` sets up."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.services import demo

demo_cli = AppGroup("demo", help="Set up the demo: users, records, a mailbox with sample mail.")


@demo_cli.command("seed")
@click.option("--no-mail", is_flag=True, help="Skip appending the sample messages to the demo mailbox.")
def seed(no_mail):
    """Create the demo users, records, mail server, mailbox and sample mail (safe to run again)."""
    try:
        report = demo.seed(with_mail=not no_mail)
    except demo.DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    if report.created:
        click.echo("Created: " + ", ".join(report.created))
    else:
        click.echo("Demo data already present; nothing new created.")
    if not no_mail:
        click.echo(f"Sample messages appended to {demo.MAILBOX_LOGIN}: {report.appended} "
                   f"(already there: {report.already_there}).")
    click.echo(f"Demo mailbox scanner id: {report.account_id}")


@demo_cli.command("account-id")
def account_id():
    """Print the id of the demo mailbox's scanner (empty when the demo is not seeded)."""
    click.echo(demo.demo_account_id() or "")
