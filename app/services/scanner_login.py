"""Logging in to a scanner's mailbox for the administrator: *Test login* and reading the server's folder list.

Both log in with what the scanner would use (``credentials.login_secret``), or
with a password typed on the form, and report every failure as a
``ScannerError`` in words, never as a 500.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from imap_tools import BaseMailBox

from app.connect import credentials
from app.connect.errors import CredentialError, MailConnectError
from app.connect.imap import open_imap
from app.connect.oauth_tokens import is_oauth
from app.extensions import db
from app.models import MailAccount, MailServer
from app.services import audit
from app.services.scanner_fields import ScannerError, get_scanner
from app.services.validation import RowId, db_id


@dataclass
class LoginCheck:
    """The outcome of a test login: ``ok`` and a sentence for the administrator."""

    ok: bool
    message: str
    unblocked: bool = False


def stored_secret(account: MailAccount) -> str | None:
    """What the scanner logs in with (``credentials.login_secret``), its failures as ``ScannerError``.

    For logging in only; never for display.
    """
    try:
        return credentials.login_secret(account)
    except CredentialError as exc:
        raise ScannerError(str(exc), "oauth" if is_oauth(account) else "password") from exc


def _open(server: MailServer, login: str, secret: str | None) -> BaseMailBox:
    try:
        return open_imap(server, login, secret, timeout=current_app.config.get("MAIL_CONNECT_TIMEOUT"))
    except MailConnectError as exc:
        raise ScannerError(str(exc), "login") from exc


def _logout(mailbox: BaseMailBox) -> None:
    try:
        mailbox.logout()
    except Exception:  # a failed goodbye changes nothing for the caller: what was asked is done
        pass


def _folder_secret(server: MailServer, login: str, password: str | None, account_id: RowId | None) -> str | None:
    """The typed password, else the stored secret of the scanner being edited (same login, same server)."""
    if password:
        return password
    if account_id not in (None, "", 0, "0"):
        account = get_scanner(account_id)
        # The stored password only ever goes back to the mailbox it belongs to.
        if account.login == login and account.server_id == server.id:
            return stored_secret(account)
    return None


def list_server_folders(server_id: RowId | None, login: str | None, password: str | None = None,
                        account_id: RowId | None = None) -> list[str]:
    """The real folder names on the server, logging in as ``login``.

    When ``password`` is empty and ``account_id`` names a scanner with that
    login on that server, its stored password is used, so editing a scanner
    does not make the administrator type the password again.
    """
    number = db_id(server_id)
    server = db.session.get(MailServer, number) if number else None
    if server is None:
        raise ScannerError("Choose an existing mail server first.", "server_id")
    login = (login or "").strip()
    if not login:
        raise ScannerError("Type the login first: the folders are read by logging in to the mailbox.", "login")
    secret = _folder_secret(server, login, password, account_id)
    if not secret and server.auth_method == "password":
        raise ScannerError("Type the password to read the folders from the server.", "password")
    mailbox = _open(server, login, secret)
    try:
        infos = mailbox.folder.list()
    except Exception as exc:  # any IMAP failure here is reported as words, never as a 500
        raise ScannerError(f"The server refused to list the folders: {exc}", "folders") from exc
    finally:
        _logout(mailbox)
    names = [info.name for info in infos if "\\noselect" not in {f.lower() for f in info.flags}]
    # INBOX first, the rest alphabetically: the order people look for them.
    return sorted(names, key=lambda n: (n.upper() != "INBOX", n.lower()))


def move_folder_problem(server: MailServer, login: str, password: str | None, account_id: RowId | None,
                        folder: str) -> str | None:
    """What is wrong with the folder stored messages are to be moved to: None when the server has it.

    Logs in as the folder list does (the typed password, else the stored one of ``account_id``).
    """
    try:
        names = list_server_folders(server.id, login, password, account_id)
    except ScannerError as exc:
        return (f"Could not check that the folder {folder!r} exists on the server: {exc} Save with another "
                "choice for after storing, or try again once the server can be reached.")
    if folder in names:
        return None
    shown = ", ".join(names[:15]) + (" ..." if len(names) > 15 else "")
    return (f"The server has no folder {folder!r}: create it in the mailbox first, or choose one of its "
            f"folders ({shown or 'none listed'}).")


def test_login(account_id: RowId) -> LoginCheck:
    """Log in to the scanner's mailbox with its stored credentials.

    Success unblocks a blocked scanner (health back to active, failure count 0).
    """
    account = get_scanner(account_id)
    try:
        mailbox = _open(account.server, account.login, stored_secret(account))
    except ScannerError as exc:
        return LoginCheck(False, f"Login to {account.login} failed: {exc}")
    _logout(mailbox)
    unblocked = account.health != "active"
    account.login_failures = 0
    if unblocked:
        account.health, account.blocked_reason = "active", None
        audit.record("mail_scanner.unblock", f"mail scanner {account.id} ({account.name})",
                     "a test login succeeded")
    db.session.commit()
    message = f"Logged in to {account.login} on {account.server.name}."
    if unblocked:
        message += " The scanner is unblocked and scans again on schedule."
    return LoginCheck(True, message, unblocked)


# pytest collects module-level names starting with "test"; this one is not a test.
test_login.__test__ = False  # type: ignore[attr-defined]
