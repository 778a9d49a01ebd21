"""``flask scanners …``: add, list, enable and disable mail scanners (and run one, from the scan engine)."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from app.cli.params import ROW_ID, row_id_or_none
from app.cli.scans import add_scan_commands
from app.extensions import db
from app.models import MailServer, User
from app.services import scanner_fields, scanner_login, scanners
from app.services.scanners import ScannerError

scanners_cli = AppGroup("scanners", help="Add, list, enable, disable and run mail scanners.")


def _server_id(name_or_id: str) -> int:
    server = db.session.scalar(select(MailServer).where(MailServer.name == name_or_id))
    if server is None and row_id_or_none(name_or_id) is not None:
        server = db.session.get(MailServer, row_id_or_none(name_or_id))
    if server is None:
        names = ", ".join(db.session.scalars(select(MailServer.name).order_by(MailServer.name))) or "none yet"
        raise click.ClickException(f"There is no mail server named {name_or_id!r} (servers: {names}). "
                                   "Add one with `flask --app wsgi servers add`.")
    return server.id


def _user_id(username: str | None) -> int | None:
    if not username:
        return None
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        raise click.ClickException(f"There is no user named {username!r}. "
                                   "Create one with `flask --app wsgi users create`.")
    return user.id


@scanners_cli.command("add")
@click.option("--server", "server", required=True, help="The mail server's name (as in `servers list`).")
@click.option("--name", "label", default=None, help="Label of the users' mailbox button (default: the login).")
@click.option("--login", required=True, help="The mailbox login, usually its e-mail address.")
@click.option("--password", default=None, help="The mailbox password (stored encrypted).")
@click.option("--folders", default="INBOX,Sent:outgoing", show_default=True,
              help="Comma-separated folders; add :outgoing for sent-mail folders.")
@click.option("--actions", default="create_email,bind_email", show_default=True,
              help="Comma-separated: create_email, bind_email, open_ticket, create_ticket.")
@click.option("--search-fields", default="contacts,organizations,leads,users", show_default=True,
              help="Comma-separated record types binding looks in: contacts, organizations, leads, users.")
@click.option("--user", "username", default=None, help="Username the created tickets are assigned to.")
@click.option("--after-store", default="keep", show_default=True,
              help="What is done in the mailbox with a stored message: keep, mark_read, move, delete.")
@click.option("--move-to", default=None, help="With --after-store move: the folder (it must exist on the server).")
@click.option("--archive", is_flag=True,
              help="Import the mail already in the mailbox as an archive (stored and bound, opening no ticket).")
@click.option("--since", default=None, help="Only mail the server received on or after this day (YYYY-MM-DD).")
@click.option("--disabled", is_flag=True, help="Create it disabled (not scanned until enabled).")
def add(server, label, login, password, folders, actions, search_fields, username, after_store, move_to,
        archive, since, disabled):
    """Add a mail scanner and print its id (alone, for scripts)."""
    try:
        account = scanners.create_scanner(
            label or login, _server_id(server), login, password, scanner_fields.parse_folders(folders),
            scanner_fields.parse_names(actions), scanner_fields.parse_names(search_fields), _user_id(username),
            enabled=not disabled, after_store=after_store, after_store_folder=move_to,
            existing=scanner_fields.ExistingMail(archive=archive, since=since or ""))
    except ScannerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(account.id)


@scanners_cli.command("list")
def list_scanners():
    """List scanners: id, name, server, login, folders, status, last run."""
    for a in scanners.list_scanners():
        _, health = scanners.health_of(a)
        last = f"{a.last_run_at:%Y-%m-%d %H:%M} {a.last_run_status}" if a.last_run_at else "never run"
        click.echo("\t".join([str(a.id), a.name, a.server.name, a.login, scanner_fields.folders_text(a),
                              a.actions, health, last]))


def _set_enabled(account_id: int, enabled: bool) -> None:
    try:
        account = scanners.set_enabled(account_id, enabled)
    except ScannerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Scanner {account.id} ({account.name}) {'enabled' if enabled else 'disabled'}.")


@scanners_cli.command("enable")
@click.argument("account_id", type=ROW_ID)
def enable(account_id):
    """Enable a scanner."""
    _set_enabled(account_id, True)


@scanners_cli.command("disable")
@click.argument("account_id", type=ROW_ID)
def disable(account_id):
    """Disable a scanner."""
    _set_enabled(account_id, False)


@scanners_cli.command("test-login")
@click.argument("account_id", type=ROW_ID)
def test_login(account_id):
    """Log in with the stored credentials; success unblocks a blocked scanner."""
    try:
        result = scanner_login.test_login(account_id)
    except ScannerError as exc:
        raise click.ClickException(str(exc)) from exc
    if not result.ok:
        raise click.ClickException(result.message)
    click.echo(result.message)


# The scan engine's commands (`scanners run`) live with the scan engine.
add_scan_commands(scanners_cli)
