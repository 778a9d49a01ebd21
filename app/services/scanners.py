"""Mail scanners (SPEC §2): create, change, delete, enable, list a server's folders, test a login.

Every function validates its input and raises ``ScannerError`` with plain words,
so the admin pages and the CLI show the same messages. Functions that change
something record an audit entry and commit.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import selectinload

from app.connect import credentials
from app.connect.errors import CredentialError, MailConnectError
from app.connect.imap import open_imap
from app.connect.oauth_tokens import is_oauth
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import (
    AutologinEvent,
    AutologinGrant,
    AutologinToken,
    Email,
    EmailAttachment,
    EmailLink,
    IgnoreFilter,
    MailAccount,
    MailServer,
    ScanFolder,
    ScanRun,
    User,
)
from app.models.mail import ACTIONS, SEARCH_FIELDS
from app.services import audit

DIRECTIONS = ("incoming", "outgoing")
DEFAULT_FOLDERS: list[tuple[str, str]] = [("INBOX", "incoming"), ("Sent", "outgoing")]
DEFAULT_ACTIONS: list[str] = ["create_email", "bind_email"]
DEFAULT_SEARCH_FIELDS: list[str] = list(SEARCH_FIELDS)

ACTION_LABELS = {
    "create_email": "Create email",
    "bind_email": "Bind email",
    "open_ticket": "Open a ticket",
    "create_ticket": "Create a ticket",
}
SEARCH_FIELD_LABELS = {
    "contacts": "Contacts",
    "organizations": "Organizations",
    "leads": "Leads",
    "users": "Users",
}


class ScannerError(ValueError):
    """A scanner cannot be saved or reached as asked.

    ``errors`` maps a form field name ("name", "login", "folders", ...) to its
    message; ``str(error)`` joins them into one sentence for the CLI and flashes.
    """

    def __init__(self, errors: dict[str, str] | str, field: str = "__all__"):
        if isinstance(errors, str):
            errors = {field: errors}
        self.errors = errors
        super().__init__(" ".join(errors.values()))


class ScannerNotFound(ScannerError):
    """No scanner (or server) with that id."""


@dataclass
class LoginCheck:
    """The outcome of a test login: ``ok`` and a sentence for the administrator."""

    ok: bool
    message: str
    unblocked: bool = False


# ---------------------------------------------------------------- parsing helpers


def parse_folders(text: str | Iterable[str]) -> list[tuple[str, str]]:
    """Read folders written as ``INBOX,Sent:outgoing`` (or one per line).

    A trailing ``:incoming`` / ``:outgoing`` gives the direction; anything else
    after a colon is part of the name, since IMAP names may contain colons.
    Without a direction, a folder is incoming.
    """
    if isinstance(text, str):
        parts = text.replace("\r", "\n").replace("\n", ",").split(",")
    else:
        parts = list(text)
    folders = []
    for part in parts:
        part = part.strip()
        if not part:
            continue
        name, direction = part, "incoming"
        head, sep, tail = part.rpartition(":")
        if sep and tail.strip().lower() in DIRECTIONS:
            name, direction = head.strip(), tail.strip().lower()
        folders.append((name, direction))
    return folders


def parse_names(text: str | Iterable[str] | None) -> list[str]:
    """Split ``create_email,bind_email`` (or a list) into clean names."""
    if text is None:
        return []
    parts = text.split(",") if isinstance(text, str) else list(text)
    return [p.strip().lower() for p in parts if p and p.strip()]


def folders_text(account: MailAccount) -> str:
    """The folders of a scanner in the CLI's notation (``INBOX,Sent:outgoing``)."""
    return ",".join(f.name if f.direction == "incoming" else f"{f.name}:{f.direction}" for f in account.folders)


def health_of(account: MailAccount) -> tuple[str, str]:
    """The status an operator reads: (key, words). Key is active/disabled/blocked/reconnect."""
    if not account.enabled:
        return "disabled", "Disabled"
    reason = (account.blocked_reason or "").strip()
    if account.health == "blocked":
        if reason.lower().startswith("blocked"):
            return "blocked", reason  # the engine's reason already says so
        return "blocked", "Blocked: " + (reason or "repeated login failures. Use Test login to unblock it.")
    if account.health == "reconnect":
        return "reconnect", "Reconnect needed: " + (reason or "the account's token was refused.")
    return "active", "Active"


# ---------------------------------------------------------------- validation


def _has_control_chars(value: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def _clean_folders(folders: Sequence, errors: dict[str, str]) -> list[tuple[str, str]]:
    cleaned: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in folders or []:
        if isinstance(item, str):
            name, direction = item, "incoming"
        else:
            name, direction = item
        name = (name or "").strip()
        direction = (direction or "incoming").strip().lower()
        if not name:
            continue
        if _has_control_chars(name):
            errors["folders"] = "A folder name may not contain control characters (tabs, line breaks ...)."
            return []
        if len(name) > 255:
            errors["folders"] = "A folder name may be at most 255 characters long."
            return []
        if direction not in DIRECTIONS:
            errors["folders"] = f"Folder {name!r}: the direction must be incoming or outgoing."
            return []
        if name.upper() == "INBOX":
            name = "INBOX"  # IMAP treats INBOX case-insensitively; store it one way
        if name in seen:
            errors["folders"] = f"The folder {name!r} is listed twice."
            return []
        seen.add(name)
        cleaned.append((name, direction))
    if not cleaned and "folders" not in errors:
        errors["folders"] = "Choose at least one folder to scan (for example INBOX)."
    return cleaned


def _clean_choices(values, allowed: Sequence[str], labels: dict[str, str], field: str, what: str,
                   errors: dict[str, str]) -> list[str]:
    names = parse_names(values)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        errors[field] = (f"Unknown {what}: {', '.join(unknown)}. Choose from: "
                         + ", ".join(f"{labels[a]} ({a})" for a in allowed) + ".")
        return []
    # Keep the declared order and drop repeats, so the stored value is canonical.
    return [a for a in allowed if a in names]


def _validate(*, name, server_id, login, folders, actions, search_fields, assignee_id,
              errors: dict[str, str]) -> dict:
    name = (name or "").strip()
    if not name or len(name) > 100:
        errors["name"] = "A name of 1 to 100 characters is required (it is the label of the users' mailbox button)."
    elif _has_control_chars(name):
        errors["name"] = "The name may not contain control characters."
    login = (login or "").strip()
    if not login:
        errors["login"] = "The login (usually the mailbox's e-mail address) is required."
    elif len(login) > 255 or _has_control_chars(login):
        errors["login"] = "The login must be at most 255 characters, without control characters."
    server = None
    try:
        server = db.session.get(MailServer, _row_id(server_id)) if server_id not in (None, "") else None
    except (TypeError, ValueError):
        server = None
    if server is None:
        errors["server_id"] = "Choose an existing mail server (add one under Mail tools → Mail servers)."
    assignee = None
    if assignee_id not in (None, "", 0, "0"):
        try:
            assignee = db.session.get(User, _row_id(assignee_id))
        except (TypeError, ValueError):
            assignee = None
        if assignee is None:
            errors["assignee_id"] = "The chosen assignee does not exist; pick a user from the list."
    return {
        "name": name,
        "login": login,
        "server": server,
        "assignee": assignee,
        "folders": _clean_folders(folders, errors),
        "actions": _clean_choices(actions, ACTIONS, ACTION_LABELS, "actions", "action", errors),
        "search_fields": _clean_choices(search_fields, SEARCH_FIELDS, SEARCH_FIELD_LABELS, "search_fields",
                                        "search field", errors),
    }


def _row_id(value) -> int:
    """A submitted id as an int that fits every database's INTEGER column.

    ValueError for anything else: a forged 99999999999999999999 used to reach the
    database and fail there (OverflowError on SQLite, out of range on PostgreSQL): a 500.
    """
    number = int(value)
    if not 0 < number < 2**31:
        raise ValueError(f"no such id: {value!r}")
    return number


def _key() -> str:
    return current_app.config["MAIL_ENCRYPTION_KEY"]


def get_scanner(account_id) -> MailAccount:
    """The scanner with this id, or ``ScannerNotFound`` in plain words."""
    try:
        account = db.session.get(MailAccount, _row_id(account_id))
    except (TypeError, ValueError):
        account = None
    if account is None:
        raise ScannerNotFound(f"There is no mail scanner with id {account_id!r}.")
    return account


def _sync_folders(account: MailAccount, folders: list[tuple[str, str]], reset_progress: bool) -> None:
    """Make the account's folders match ``folders``, keeping the progress of folders that stay.

    A folder kept under the same name keeps its UIDVALIDITY and last UID, so
    editing a scanner never makes it download a folder again.
    """
    existing = {f.name: f for f in account.folders}
    wanted = dict(folders)
    for name, folder in existing.items():
        if name not in wanted:
            account.folders.remove(folder)
    # Flush removals first: a folder removed and re-added in one edit would hit the unique key.
    db.session.flush()
    for name, direction in folders:
        folder = existing.get(name)
        if folder is None:
            account.folders.append(ScanFolder(name=name, direction=direction, last_uid=0))
        else:
            folder.direction = direction
            if reset_progress:
                folder.uidvalidity = None
                folder.last_uid = 0


# ---------------------------------------------------------------- use cases


def create_scanner(name: str, server_id, login: str, password: str | None,
                   folders: Sequence | None = None, actions=None, search_fields=None,
                   assignee_id=None, enabled: bool = True) -> MailAccount:
    """Create a scanner; the password is encrypted at rest.

    ``folders`` is a list of (name, direction); ``None`` means INBOX incoming
    and Sent outgoing. ``actions`` / ``search_fields`` default to creating and
    binding e-mails, looking in every record type.
    """
    errors: dict[str, str] = {}
    data = _validate(
        name=name, server_id=server_id, login=login,
        folders=DEFAULT_FOLDERS if folders is None else folders,
        actions=DEFAULT_ACTIONS if actions is None else actions,
        search_fields=DEFAULT_SEARCH_FIELDS if search_fields is None else search_fields,
        assignee_id=assignee_id, errors=errors)
    server = data["server"]
    if server is not None and server.auth_method == "password" and not password:
        errors["password"] = f"The password is required: the server {server.name} logs in with a password."
    if password and len(password) > 1000:
        errors["password"] = "The password may be at most 1000 characters long."
    if errors:
        raise ScannerError(errors)
    account = MailAccount(
        name=data["name"], server_id=server.id, login=data["login"],
        password_enc=encrypt_secret(_key(), password) if password else None,
        actions=",".join(data["actions"]), search_fields=",".join(data["search_fields"]),
        assignee_id=data["assignee"].id if data["assignee"] else None,
        enabled=bool(enabled), health="active", login_failures=0)
    for folder_name, direction in data["folders"]:
        account.folders.append(ScanFolder(name=folder_name, direction=direction, last_uid=0))
    db.session.add(account)
    db.session.flush()
    audit.record("mail_scanner.create", f"mail scanner {account.id} ({account.name})",
                 f"server={server.name} login={account.login} folders={folders_text(account)} "
                 f"actions={account.actions} search_fields={account.search_fields} enabled={account.enabled}")
    db.session.commit()
    return account


def update_scanner(account_id, *, name: str, server_id, login: str, password: str | None = None,
                   folders: Sequence, actions, search_fields, assignee_id=None,
                   enabled: bool | None = None) -> MailAccount:
    """Change a scanner. An empty ``password`` keeps the stored one.

    Changing the server or the login points the scanner at another mailbox, so
    its folders start over (duplicates are still caught by Message-ID); new
    credentials also clear a block, since the reason for it is likely fixed.
    """
    account = get_scanner(account_id)
    errors: dict[str, str] = {}
    data = _validate(name=name, server_id=server_id, login=login, folders=folders, actions=actions,
                     search_fields=search_fields, assignee_id=assignee_id, errors=errors)
    server = data["server"]
    if password and len(password) > 1000:
        errors["password"] = "The password may be at most 1000 characters long."
    if (server is not None and server.auth_method == "password" and not password
            and not account.password_enc):
        errors["password"] = f"The password is required: the server {server.name} logs in with a password."
    if errors:
        raise ScannerError(errors)
    changes = []
    moved = server.id != account.server_id or data["login"] != account.login
    for attr, value in (("name", data["name"]), ("server_id", server.id), ("login", data["login"]),
                        ("actions", ",".join(data["actions"])),
                        ("search_fields", ",".join(data["search_fields"])),
                        ("assignee_id", data["assignee"].id if data["assignee"] else None)):
        if getattr(account, attr) != value:
            changes.append(f"{attr}={value}")
            setattr(account, attr, value)
    if enabled is not None and bool(enabled) != account.enabled:
        account.enabled = bool(enabled)
        changes.append(f"enabled={account.enabled}")
    if password:
        account.password_enc = encrypt_secret(_key(), password)
        changes.append("password changed")  # never the password itself
    before = folders_text(account)
    _sync_folders(account, data["folders"], reset_progress=moved)
    if folders_text(account) != before:
        changes.append(f"folders={folders_text(account)}")
    if (moved or password) and account.health != "active":
        account.health, account.blocked_reason, account.login_failures = "active", None, 0
        changes.append("unblocked (new credentials)")
    elif moved or password:
        account.login_failures = 0
    if moved and (account.oauth_refresh_token_enc or account.oauth_access_token_enc):
        # OAuth tokens were granted for the old mailbox: another login or server must be
        # connected again (Connect account), never logged in to with the old mailbox's tokens.
        account.oauth_refresh_token_enc = account.oauth_access_token_enc = None
        account.oauth_expires_at = None
        changes.append("OAuth connection cleared (another mailbox)")
    audit.record("mail_scanner.update", f"mail scanner {account.id} ({account.name})",
                 "; ".join(changes) or "no change")
    db.session.commit()
    return account


def delete_scanner(account_id) -> str:
    """Delete a scanner with its stored e-mails, run history, filters and grants; return its name.

    Dependants are deleted explicitly rather than left to ON DELETE CASCADE,
    because SQLite enforces foreign keys only when asked to.
    """
    account = get_scanner(account_id)
    name = account.name
    email_ids = select(Email.id).where(Email.account_id == account.id)
    db.session.execute(delete(EmailAttachment).where(EmailAttachment.email_id.in_(email_ids)))
    db.session.execute(delete(EmailLink).where(EmailLink.email_id.in_(email_ids)))
    db.session.execute(delete(Email).where(Email.account_id == account.id))
    db.session.execute(delete(ScanRun).where(ScanRun.account_id == account.id))
    db.session.execute(delete(IgnoreFilter).where(IgnoreFilter.account_id == account.id))
    db.session.execute(delete(AutologinGrant).where(AutologinGrant.account_id == account.id))
    db.session.execute(delete(AutologinToken).where(AutologinToken.account_id == account.id))
    # Who opened the mailbox stays on record, only no longer tied to it.
    db.session.execute(update(AutologinEvent).where(AutologinEvent.account_id == account.id)
                       .values(account_id=None))
    audit.record("mail_scanner.delete", f"mail scanner {account.id} ({name})", f"login={account.login}")
    db.session.delete(account)
    db.session.commit()
    return name


def set_enabled(account_id, enabled: bool) -> MailAccount:
    """Enable or disable a scanner (a disabled one is never scheduled)."""
    account = get_scanner(account_id)
    if account.enabled != bool(enabled):
        account.enabled = bool(enabled)
        audit.record("mail_scanner.enable" if enabled else "mail_scanner.disable",
                     f"mail scanner {account.id} ({account.name})")
        db.session.commit()
    return account


def stored_secret(account: MailAccount) -> str | None:
    """What the scanner logs in with (``credentials.login_secret``), its failures as ``ScannerError``.

    For logging in only; never for display.
    """
    try:
        return credentials.login_secret(account)
    except CredentialError as exc:
        raise ScannerError(str(exc), "oauth" if is_oauth(account) else "password") from exc


def _open(server: MailServer, login: str, secret: str | None):
    try:
        return open_imap(server, login, secret, timeout=current_app.config.get("MAIL_CONNECT_TIMEOUT"))
    except MailConnectError as exc:
        raise ScannerError(str(exc), "login") from exc


def list_server_folders(server_id, login: str, password: str | None = None, account_id=None) -> list[str]:
    """The real folder names on the server, logging in as ``login``.

    When ``password`` is empty and ``account_id`` names a scanner with that
    login on that server, its stored password is used, so editing a scanner
    does not make the administrator type the password again.
    """
    try:
        server = db.session.get(MailServer, _row_id(server_id))
    except (TypeError, ValueError):
        server = None
    if server is None:
        raise ScannerError("Choose an existing mail server first.", "server_id")
    login = (login or "").strip()
    if not login:
        raise ScannerError("Type the login first: the folders are read by logging in to the mailbox.", "login")
    secret = password or None
    if not secret and account_id not in (None, "", 0, "0"):
        account = get_scanner(account_id)
        # The stored password only ever goes back to the mailbox it belongs to.
        if account.login == login and account.server_id == server.id:
            secret = stored_secret(account)
    if not secret and server.auth_method == "password":
        raise ScannerError("Type the password to read the folders from the server.", "password")
    mailbox = _open(server, login, secret)
    try:
        infos = mailbox.folder.list()
    except Exception as exc:  # any IMAP failure here is reported as words, never as a 500
        raise ScannerError(f"The server refused to list the folders: {exc}", "folders") from exc
    finally:
        try:
            mailbox.logout()
        except Exception:  # a failed goodbye changes nothing for the caller
            pass
    names = [info.name for info in infos if "\\noselect" not in {f.lower() for f in info.flags}]
    # INBOX first, the rest alphabetically: the order people look for them.
    return sorted(names, key=lambda n: (n.upper() != "INBOX", n.lower()))


def test_login(account_id) -> LoginCheck:
    """Log in to the scanner's mailbox with its stored credentials.

    Success unblocks a blocked scanner (health back to active, failure count 0).
    """
    account = get_scanner(account_id)
    try:
        mailbox = _open(account.server, account.login, stored_secret(account))
    except ScannerError as exc:
        return LoginCheck(False, f"Login to {account.login} failed: {exc}")
    try:
        mailbox.logout()
    except Exception:  # the login itself worked, which is what was asked
        pass
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


def list_scanners() -> list[MailAccount]:
    """Every scanner with its server and folders, by name."""
    return list(db.session.scalars(
        select(MailAccount).options(selectinload(MailAccount.server), selectinload(MailAccount.folders))
        .order_by(MailAccount.name, MailAccount.id)))
