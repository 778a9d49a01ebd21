"""``flask users …``: create and list users."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.services import accounts

users_cli = AppGroup("users", help="Create and list users.")


@users_cli.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--email", default=None, help="The user's own e-mail address.")
@click.option("--name", "full_name", default="", help="Full name shown in the top bar.")
def create(username, password, admin, email, full_name):
    """Create a user (add --admin for an administrator)."""
    try:
        user = accounts.create_user(username, password, admin=admin, email=email, full_name=full_name)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {'administrator' if user.is_admin else 'user'} {user.username} (id {user.id}).")


@users_cli.command("list")
def list_users():
    """List users."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        click.echo(f"{user.id}\t{user.username}\t{'admin' if user.is_admin else 'user'}\t{user.email or ''}")
