"""``flask users …``: create, list, disable and enable users, set a password, end sessions."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.services import accounts

users_cli = AppGroup("users", help="Create, list, disable and enable users; set passwords; end sessions.")


def _user(username: str) -> User:
    user = accounts.find_user(username)
    if user is None:
        raise click.ClickException(f"There is no user named {username!r} (see `flask --app wsgi users list`).")
    return user


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
    """List users: id, name, role, e-mail, and "disabled" for disabled ones."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        click.echo("\t".join([str(user.id), user.username, "admin" if user.is_admin else "user", user.email or "",
                              "" if user.is_active else "disabled"]).rstrip("\t"))


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password(username, password):
    """Set a user's password; every session of theirs ends."""
    user = _user(username)
    try:
        accounts.change_password(user, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Password of {user.username} changed; their sessions have ended.")


@users_cli.command("disable")
@click.argument("username")
def disable(username):
    """Disable a user: they cannot log in, and every session of theirs ends."""
    user = _user(username)
    accounts.set_active(user, False)
    click.echo(f"{user.username} is disabled; their sessions have ended.")


@users_cli.command("enable")
@click.argument("username")
def enable(username):
    """Enable a disabled user again."""
    user = _user(username)
    accounts.set_active(user, True)
    click.echo(f"{user.username} is enabled.")


@users_cli.command("end-sessions")
@click.argument("username")
def end_sessions(username):
    """Log a user out everywhere (every session and remember-me cookie)."""
    user = _user(username)
    accounts.end_sessions(user)
    click.echo(f"Every session of {user.username} has ended.")
