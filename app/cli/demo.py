"""``flask demo …``: the demo data that ``scripts/run.sh`` sets up."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.demo import mailbox, report
from app.demo import seed as demo_seed

demo_cli = AppGroup("demo", help="Set up the demo: users, records, a mailbox with sample mail.")


@demo_cli.command("seed")
@click.option("--no-mail", is_flag=True, help="Skip appending the sample messages to the demo mailbox.")
def seed(no_mail):
    """Create the demo users, records, mail server, mailbox and sample mail (safe to run again)."""
    try:
        done = demo_seed.seed(with_mail=not no_mail)
    except report.DemoError as exc:
        raise click.ClickException(str(exc)) from exc
    if done.created:
        click.echo("Created: " + ", ".join(done.created))
    else:
        click.echo("Demo data already present; nothing new created.")
    if not no_mail:
        click.echo(f"Sample messages appended to {mailbox.MAILBOX_LOGIN}: {done.appended} "
                   f"(already there: {done.already_there}).")
    click.echo(f"Demo mailbox scanner id: {done.account_id}")


@demo_cli.command("account-id")
def account_id():
    """Print the id of the demo mailbox's scanner (empty when the demo is not seeded)."""
    click.echo(demo_seed.demo_account_id() or "")
