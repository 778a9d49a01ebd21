"""``flask users …``: create, list, disable and enable users, promote and demote, set a password, end sessions.

Every change goes through app.services.user_admin, as the web pages do: it is audited (with no user,
since the command line has none), and the last active administrator is neither disabled nor demoted.
"""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

from app.models import User
from app.services import accounts, user_admin

users_cli = AppGroup("users", help="Create, list, disable and enable users; promote and demote; set passwords; "
                                   "end sessions.")


def _user(username: str) -> User:
    user = accounts.find_user(username)
    if user is None:
        raise click.ClickException(f"There is no user named {username!r} (see `flask --app wsgi users list`).")
    return user


def _row(user: User) -> dict:
    return {"id": user.id, "username": user.username, "full_name": user.full_name or "",
            "email": user.email, "role": "admin" if user.is_admin else "user", "active": bool(user.is_active),
            "created_at": user.created_at.isoformat() + "Z" if user.created_at else None}


@users_cli.command("create")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.option("--email", default=None, help="The user's own e-mail address.")
@click.option("--name", "full_name", default="", help="Full name shown in the top bar.")
def create(username, password, admin, email, full_name):
    """Create a user (add --admin for an administrator)."""
    if not password:
        raise click.ClickException(f"Give a password of at least {accounts.MIN_PASSWORD} characters.")
    try:
        user, _ = user_admin.create_user(user_admin.NewUser(username=username, password=password, is_admin=admin,
                                                            email=email, full_name=full_name))
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Created {'administrator' if user.is_admin else 'user'} {user.username} (id {user.id}).")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array of objects instead of tab-separated lines.")
def list_users(as_json):
    """List users: id, name, role, e-mail, and "disabled" for disabled ones."""
    users = sorted(user_admin.list_users(), key=lambda u: u.username)
    if as_json:
        click.echo(json.dumps([_row(u) for u in users], indent=2))
        return
    for user in users:
        click.echo("\t".join([str(user.id), user.username, "admin" if user.is_admin else "user", user.email or "",
                              "" if user.is_active else "disabled"]).rstrip("\t"))


@users_cli.command("set-password")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
def set_password(username, password):
    """Set a user's password; every session of theirs ends."""
    user = _user(username)
    if not password:
        raise click.ClickException(f"Give a password of at least {accounts.MIN_PASSWORD} characters.")
    try:
        user_admin.reset_password(user, password)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Password of {user.username} changed; their sessions have ended.")


def _change(done: bool, changed: str, unchanged: str) -> None:
    click.echo(changed if done else unchanged)


@users_cli.command("disable")
@click.argument("username")
def disable(username):
    """Disable a user: they cannot log in, and every session of theirs ends."""
    user = _user(username)
    try:
        done = user_admin.set_active(user, False)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    _change(done, f"{user.username} is disabled; their sessions have ended.", f"{user.username} was already disabled.")


@users_cli.command("enable")
@click.argument("username")
def enable(username):
    """Enable a disabled user again."""
    user = _user(username)
    _change(user_admin.set_active(user, True), f"{user.username} is enabled.", f"{user.username} was already enabled.")


@users_cli.command("promote")
@click.argument("username")
def promote(username):
    """Make a user an administrator."""
    user = _user(username)
    _change(user_admin.set_admin(user, True), f"{user.username} is now an administrator.",
            f"{user.username} already was an administrator.")


@users_cli.command("demote")
@click.argument("username")
def demote(username):
    """Make an administrator an ordinary user (never the last active one)."""
    user = _user(username)
    try:
        done = user_admin.set_admin(user, False)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    _change(done, f"{user.username} is now an ordinary user.", f"{user.username} already was an ordinary user.")


@users_cli.command("end-sessions")
@click.argument("username")
def end_sessions(username):
    """Log a user out everywhere (every session and remember-me cookie)."""
    user = _user(username)
    user_admin.end_sessions(user)
    click.echo(f"Every session of {user.username} has ended.")
