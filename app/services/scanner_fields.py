"""What a mail scanner is made of, as administrators type it: folders, actions, search fields, and their checks.

The admin form and the ``flask scanners`` commands give the same fields; each
check puts a message for people under the field's name, and
``app.services.scanners`` raises them together as one ``ScannerError``. The error
classes and ``get_scanner`` live here, below both ``scanners`` and
``scanner_login``, so that saving a scanner can ask the server for its folders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TypeVar

from app.extensions import db
from app.models import MailAccount, MailServer, User
from app.models.base import utcnow
from app.models.mail import ACTIONS, AFTER_STORE_ACTIONS, SEARCH_FIELDS
from app.services.validation import FieldErrors, RowId, db_id, has_control_chars

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
AFTER_STORE_LABELS = {
    "keep": "Leave it as it is",
    "mark_read": "Mark it as read",
    "move": "Move it to a folder",
    "delete": "Delete it",
}
SEARCH_FIELD_LABELS = {
    "contacts": "Contacts",
    "organizations": "Organizations",
    "leads": "Leads",
    "users": "Users",
}
MAX_PASSWORD_LENGTH = 1000

Row = TypeVar("Row", MailServer, User)


class ScannerError(FieldErrors):
    """A scanner cannot be saved or reached as asked; a message per form field ("name", "folders", ...)."""


class ScannerNotFound(ScannerError):
    """No scanner (or server) with that id."""


def get_scanner(account_id: RowId | None) -> MailAccount:
    """The scanner with this id, or ``ScannerNotFound`` in plain words."""
    number = db_id(account_id)
    account = db.session.get(MailAccount, number) if number else None
    if account is None:
        raise ScannerNotFound(f"There is no mail scanner with id {account_id!r}.")
    return account


@dataclass
class ScannerFields:
    """A scanner's fields, cleaned: the server and assignee looked up, the lists in canonical order."""

    name: str
    login: str
    server: MailServer | None
    assignee: User | None
    folders: list[tuple[str, str]]
    actions: list[str]
    search_fields: list[str]
    after_store: str = "keep"
    after_store_folder: str | None = None  # only with after_store "move"
    archive_existing: bool = False
    since_date: date | None = None


@dataclass(frozen=True)
class ExistingMail:
    """What a scanner does with the mail already in its mailbox, as asked (cleaned by ``clean_existing``).

    ``archive``: import it as an archive (stored and bound, acting on no ticket). ``since``: read only
    mail the server received on or after that day (a date, "YYYY-MM-DD", or empty for all of it).
    """

    archive: bool = False
    since: date | str | None = None


def clean_existing(existing: ExistingMail, errors: dict[str, str], today: date) -> tuple[bool, date | None]:
    """The archive option and the since-day, checked; a problem with the day goes to ``errors``."""
    since = existing.since
    if isinstance(since, str):
        text = since.strip()
        if not text:
            since = None
        elif not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            errors["since_date"] = "Write the day as YYYY-MM-DD, for example 2026-01-31, or leave it empty."
            return bool(existing.archive), None
        else:
            try:
                since = date.fromisoformat(text)
            except ValueError:
                errors["since_date"] = f"{text} is not a day of the calendar."
                return bool(existing.archive), None
    if since is not None and since > today:
        errors["since_date"] = "The day is in the future: no mail could be read until then. Pick today or earlier."
    elif since is not None and since.year < 1970:
        errors["since_date"] = "Pick a day from 1970 on."
    return bool(existing.archive), since


# ---------------------------------------------------------------- the CLI's notation


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


# ---------------------------------------------------------------- checks


def _folder_problem(name: str, direction: str, seen: set[str]) -> str | None:
    """What is wrong with one folder of the list (``name`` already in its stored form), or None."""
    if has_control_chars(name):
        return "A folder name may not contain control characters (tabs, line breaks ...)."
    if len(name) > 255:
        return "A folder name may be at most 255 characters long."
    if direction not in DIRECTIONS:
        return f"Folder {name!r}: the direction must be incoming or outgoing."
    if name in seen:
        return f"The folder {name!r} is listed twice."
    return None


def clean_folders(folders: Sequence | None, errors: dict[str, str]) -> list[tuple[str, str]]:
    """(name, direction) pairs, INBOX spelled one way; empty names are dropped, at least one must remain."""
    cleaned: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in folders or []:
        name, direction = (item, "incoming") if isinstance(item, str) else item
        name = (name or "").strip()
        direction = (direction or "incoming").strip().lower()
        if not name:
            continue
        if name.upper() == "INBOX":
            name = "INBOX"  # IMAP treats INBOX case-insensitively; store it one way
        problem = _folder_problem(name, direction, seen)
        if problem:
            errors["folders"] = problem
            return []
        seen.add(name)
        cleaned.append((name, direction))
    if not cleaned:
        errors["folders"] = "Choose at least one folder to scan (for example INBOX)."
    return cleaned


def clean_choices(values: str | Iterable[str] | None, allowed: Sequence[str], labels: dict[str, str],
                  field: str, what: str, errors: dict[str, str]) -> list[str]:
    """The names among ``allowed``, in its order and without repeats; unknown names are an error."""
    names = parse_names(values)
    unknown = [n for n in names if n not in allowed]
    if unknown:
        errors[field] = (f"Unknown {what}: {', '.join(unknown)}. Choose from: "
                         + ", ".join(f"{labels[a]} ({a})" for a in allowed) + ".")
        return []
    # Keep the declared order and drop repeats, so the stored value is canonical.
    return [a for a in allowed if a in names]


def clean_after_store(action: str | None, folder: str | None, folders: list[tuple[str, str]],
                      errors: dict[str, str]) -> tuple[str, str | None]:
    """(action, folder to move to): the folder only for a move, never one the scanner reads itself."""
    action = (action or "keep").strip().lower()
    if action not in AFTER_STORE_ACTIONS:
        errors["after_store"] = ("Unknown choice for after storing: " + action + ". Choose from: "
                                 + ", ".join(f"{AFTER_STORE_LABELS[a]} ({a})" for a in AFTER_STORE_ACTIONS) + ".")
        return "keep", None
    if action != "move":
        return action, None
    name = (folder or "").strip()
    if name.upper() == "INBOX":
        name = "INBOX"
    if not name:
        errors["after_store_folder"] = "Choose the folder stored messages are moved to."
    elif has_control_chars(name) or len(name) > 255:
        errors["after_store_folder"] = "A folder name has at most 255 characters, without control characters."
    elif name in dict(folders):
        errors["after_store_folder"] = (f"The scanner reads the folder {name!r} itself: moving mail there would "
                                        "make it read every message twice. Choose a folder it does not scan.")
    return action, name or None


def _name_problem(name: str) -> str | None:
    if not name or len(name) > 100:
        return "A name of 1 to 100 characters is required (it is the label of the users' mailbox button)."
    if has_control_chars(name):
        return "The name may not contain control characters."
    return None


def _login_problem(login: str) -> str | None:
    if not login:
        return "The login (usually the mailbox's e-mail address) is required."
    if len(login) > 255 or has_control_chars(login):
        return "The login must be at most 255 characters, without control characters."
    return None


def _row(model: type[Row], value: RowId | None) -> Row | None:
    number = db_id(value)
    return db.session.get(model, number) if number else None


def clean_scanner_fields(*, name: str | None, server_id: RowId | None, login: str | None,
                         folders: Sequence | None, actions: str | Iterable[str] | None,
                         search_fields: str | Iterable[str] | None, assignee_id: RowId | None,
                         errors: dict[str, str], after_store: str | None = None,
                         after_store_folder: str | None = None,
                         existing: ExistingMail | None = None) -> ScannerFields:
    """Check every field of a scanner at once; each problem goes to ``errors`` under its field."""
    name, login = (name or "").strip(), (login or "").strip()
    problems = {"name": _name_problem(name), "login": _login_problem(login)}
    errors.update({field: problem for field, problem in problems.items() if problem})
    server = _row(MailServer, server_id)
    if server is None:
        errors["server_id"] = "Choose an existing mail server (add one under Mail tools → Mail servers)."
    assignee = None
    if assignee_id not in (None, "", 0, "0"):
        assignee = _row(User, assignee_id)
        if assignee is None:
            errors["assignee_id"] = "The chosen assignee does not exist; pick a user from the list."
    cleaned_folders = clean_folders(folders, errors)
    after, target = clean_after_store(after_store, after_store_folder, cleaned_folders, errors)
    archive, since = clean_existing(existing or ExistingMail(), errors, utcnow().date())
    return ScannerFields(
        archive_existing=archive, since_date=since,
        name=name, login=login, server=server, assignee=assignee,
        folders=cleaned_folders,
        actions=clean_choices(actions, ACTIONS, ACTION_LABELS, "actions", "action", errors),
        search_fields=clean_choices(search_fields, SEARCH_FIELDS, SEARCH_FIELD_LABELS, "search_fields",
                                    "search field", errors),
        after_store=after, after_store_folder=target)


def password_problem(server: MailServer | None, password: str | None, *, has_stored: bool) -> str | None:
    """What is wrong with a scanner's typed password, or None (a password server needs one, typed or stored)."""
    if password and len(password) > MAX_PASSWORD_LENGTH:
        return f"The password may be at most {MAX_PASSWORD_LENGTH} characters long."
    if server is not None and server.auth_method == "password" and not password and not has_stored:
        return f"The password is required: the server {server.name} logs in with a password."
    return None
