"""Mail scanners: create, change, delete, enable and list them.

Every function validates its input and raises ``ScannerError`` with plain words,
so the admin pages and the CLI show the same messages. Functions that change
something record an audit entry and commit. The fields and their checks are
``app.services.scanner_fields``; logging in for the administrator (*Test login*,
the folder list) is ``app.services.scanner_login``, which also checks that a move target exists.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import selectinload

from app.crypto import app_key, encrypt_secret
from app.extensions import db
from app.models import (
    AutologinEvent,
    AutologinGrant,
    AutologinToken,
    Email,
    EmailAttachment,
    EmailLink,
    EmailMailbox,
    IgnoreFilter,
    MailAccount,
    PendingMailAction,
    ScanFolder,
    ScanRun,
    Ticket,
)
from app.services import audit, scanner_login
from app.services.scanner_fields import (
    DEFAULT_ACTIONS,
    DEFAULT_FOLDERS,
    DEFAULT_SEARCH_FIELDS,
    ExistingMail,
    ScannerError,
    ScannerFields,
    ScannerNotFound,
    clean_scanner_fields,
    folders_text,
    get_scanner,
    password_problem,
)
from app.services.validation import RowId

__all__ = ["ScannerError", "ScannerNotFound", "get_scanner", "create_scanner", "update_scanner", "delete_scanner",
           "set_enabled", "list_scanners", "health_of"]


def health_of(account: MailAccount) -> tuple[str, str]:
    """The status an operator reads: (key, words). Key is active/disabled/blocked/reconnect/unconnected."""
    if not account.enabled:
        return "disabled", "Disabled"
    if account.server.auth_method == "oauth2" and not account.oauth_refresh_token_enc:
        return "unconnected", ("Not connected yet: press Connect account to sign the mailbox in at the "
                               "provider. It is not scanned until then.")
    reason = (account.blocked_reason or "").strip()
    if account.health == "blocked":
        if reason.lower().startswith("blocked"):
            return "blocked", reason  # the engine's reason already says so
        return "blocked", "Blocked: " + (reason or "repeated login failures. Use Test login to unblock it.")
    if account.health == "reconnect":
        return "reconnect", "Reconnect needed: " + (reason or "the account's token was refused.")
    return "active", "Active"


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


def _refuse_problems(data: ScannerFields, errors: dict[str, str], password: str | None, *,
                     has_stored: bool) -> None:
    """``ScannerError`` with every problem of the fields and the password at once, if there is one."""
    problem = password_problem(data.server, password, has_stored=has_stored)
    if problem:
        errors["password"] = problem
    if errors:
        raise ScannerError(errors)


def _check_move_target(data: ScannerFields, password: str | None, account: MailAccount | None) -> None:
    """A move needs its folder on the server: asked over IMAP when the move is new or the mailbox changed."""
    if data.after_store != "move" or data.server is None or data.after_store_folder is None:
        return
    if account is not None and (account.after_store, account.after_store_folder, account.server_id,
                                account.login) == ("move", data.after_store_folder, data.server.id, data.login):
        return  # checked when it was chosen; the runs report a folder that disappeared since
    problem = scanner_login.move_folder_problem(data.server, data.login, password, account.id if account else None,
                                                data.after_store_folder)
    if problem:
        raise ScannerError({"after_store_folder": problem})


def create_scanner(name: str, server_id: RowId | None, login: str, password: str | None,
                   folders: Sequence | None = None, actions: str | Iterable[str] | None = None,
                   search_fields: str | Iterable[str] | None = None, assignee_id: RowId | None = None,
                   enabled: bool = True, after_store: str | None = None,
                   after_store_folder: str | None = None, existing: ExistingMail | None = None) -> MailAccount:
    """Create a scanner; the password is encrypted at rest.

    ``folders`` is a list of (name, direction); ``None`` means INBOX incoming
    and Sent outgoing. ``actions`` / ``search_fields`` default to creating and
    binding e-mails, looking in every record type. ``after_store`` (keep,
    mark_read, move, delete) is what is done on the server with a stored
    message; a move's ``after_store_folder`` must exist there. ``existing`` says
    whether the mail already in the mailbox is imported as an archive, and
    from which day mail is read.
    """
    errors: dict[str, str] = {}
    data = clean_scanner_fields(
        name=name, server_id=server_id, login=login,
        folders=DEFAULT_FOLDERS if folders is None else folders,
        actions=DEFAULT_ACTIONS if actions is None else actions,
        search_fields=DEFAULT_SEARCH_FIELDS if search_fields is None else search_fields,
        assignee_id=assignee_id, errors=errors, after_store=after_store, after_store_folder=after_store_folder,
        existing=existing)
    _refuse_problems(data, errors, password, has_stored=False)
    _check_move_target(data, password, None)
    server = data.server
    account = MailAccount(
        name=data.name, server_id=server.id, login=data.login,
        password_enc=encrypt_secret(app_key(), password) if password else None,
        actions=",".join(data.actions), search_fields=",".join(data.search_fields),
        assignee_id=data.assignee.id if data.assignee else None,
        after_store=data.after_store, after_store_folder=data.after_store_folder,
        archive_existing=data.archive_existing, since_date=data.since_date,
        enabled=bool(enabled), health="active", login_failures=0)
    for folder_name, direction in data.folders:
        account.folders.append(ScanFolder(name=folder_name, direction=direction, last_uid=0))
    db.session.add(account)
    db.session.flush()
    audit.record("mail_scanner.create", f"mail scanner {account.id} ({account.name})",
                 f"server={server.name} login={account.login} folders={folders_text(account)} "
                 f"actions={account.actions} search_fields={account.search_fields} enabled={account.enabled} "
                 f"after_store={account.after_store} after_store_folder={account.after_store_folder or ''} "
                 f"archive_existing={account.archive_existing} since_date={account.since_date or ''}")
    db.session.commit()
    return account


def _apply_fields(account: MailAccount, data: ScannerFields) -> list[str]:
    """Copy the cleaned fields (folders aside) onto the scanner; returns the audit lines of what changed."""
    changes = []
    for attr, value in (("name", data.name), ("server_id", data.server.id), ("login", data.login),
                        ("actions", ",".join(data.actions)), ("search_fields", ",".join(data.search_fields)),
                        ("assignee_id", data.assignee.id if data.assignee else None),
                        ("after_store", data.after_store), ("after_store_folder", data.after_store_folder),
                        ("archive_existing", data.archive_existing), ("since_date", data.since_date)):
        if getattr(account, attr) != value:
            changes.append(f"{attr}={value}")
            setattr(account, attr, value)
    return changes


def _new_credentials(account: MailAccount, *, moved: bool) -> list[str]:
    """A new password or another mailbox: a block is lifted, and OAuth tokens of the old mailbox dropped."""
    changes = []
    if account.health != "active":
        account.health, account.blocked_reason = "active", None
        changes.append("unblocked (new credentials)")
    account.login_failures = 0
    if moved and (account.oauth_refresh_token_enc or account.oauth_access_token_enc):
        # OAuth tokens were granted for the old mailbox: another login or server must be
        # connected again (Connect account), never logged in to with the old mailbox's tokens.
        account.oauth_refresh_token_enc = account.oauth_access_token_enc = None
        account.oauth_expires_at = None
        changes.append("OAuth connection cleared (another mailbox)")
    return changes


def update_scanner(account_id: RowId, *, name: str, server_id: RowId | None, login: str,
                   password: str | None = None, folders: Sequence, actions: str | Iterable[str] | None,
                   search_fields: str | Iterable[str] | None, assignee_id: RowId | None = None,
                   enabled: bool | None = None, after_store: str | None = None,
                   after_store_folder: str | None = None, existing: ExistingMail | None = None) -> MailAccount:
    """Change a scanner. An empty ``password`` keeps the stored one; ``existing`` None keeps its
    archive import and since-day.

    Turning the archive import on makes the mail in each folder at the next run the archive.

    Changing the server or the login points the scanner at another mailbox, so
    its folders start over (duplicates are still caught by Message-ID); new
    credentials also clear a block, since the reason for it is likely fixed.
    """
    account = get_scanner(account_id)
    errors: dict[str, str] = {}
    data = clean_scanner_fields(name=name, server_id=server_id, login=login, folders=folders, actions=actions,
                                search_fields=search_fields, assignee_id=assignee_id, errors=errors,
                                after_store=after_store if after_store is not None else account.after_store,
                                after_store_folder=after_store_folder if after_store is not None
                                else account.after_store_folder,
                                existing=existing if existing is not None
                                else ExistingMail(account.archive_existing, account.since_date))
    _refuse_problems(data, errors, password, has_stored=bool(account.password_enc))
    _check_move_target(data, password, account)
    moved = data.server.id != account.server_id or data.login != account.login
    if data.archive_existing and not account.archive_existing:
        for folder in account.folders:
            folder.archive_below_uid = None  # recorded anew at the next run: what is there then is archive
    changes = _apply_fields(account, data)
    if enabled is not None and bool(enabled) != account.enabled:
        account.enabled = bool(enabled)
        changes.append(f"enabled={account.enabled}")
    if password:
        account.password_enc = encrypt_secret(app_key(), password)
        changes.append("password changed")  # never the password itself
    before = folders_text(account)
    _sync_folders(account, data.folders, reset_progress=moved)
    if folders_text(account) != before:
        changes.append(f"folders={folders_text(account)}")
    if moved:
        # Actions still owed name UIDs of the old mailbox: on another mailbox they would hit other messages.
        db.session.execute(delete(PendingMailAction).where(PendingMailAction.account_id == account.id))
    if moved or password:
        changes += _new_credentials(account, moved=moved)
    audit.record("mail_scanner.update", f"mail scanner {account.id} ({account.name})",
                 "; ".join(changes) or "no change")
    db.session.commit()
    return account


def _hand_over_shared_mail(account_id: int) -> None:
    """E-mails stored from this mailbox that other mailboxes reached too stay stored: each becomes the
    mail of the next mailbox it reached (its key, folder and UID there), and loses only this link.
    Their tickets follow them."""
    other = (select(EmailMailbox).where(EmailMailbox.email_id == Email.id, EmailMailbox.account_id != account_id)
             .order_by(EmailMailbox.id).limit(1))
    values = {col: other.with_only_columns(getattr(EmailMailbox, col)).scalar_subquery()
              for col in ("account_id", "message_key", "folder", "uidvalidity", "uid")}
    db.session.execute(update(Email).where(Email.account_id == account_id, other.exists()).values(**values))
    # A ticket made from this mailbox goes with the message that opened it (the first e-mail linked to
    # it that reached this mailbox, as in ticket_access) to the next mailbox that message reached, so
    # that mailbox's users keep following it; without one it is nobody's mailbox's (NULL).
    opener = (select(func.min(EmailLink.email_id)).join(EmailMailbox, EmailMailbox.email_id == EmailLink.email_id)
              .where(EmailLink.record_type == "ticket", EmailLink.record_id == Ticket.id,
                     EmailMailbox.account_id == account_id).correlate(Ticket).scalar_subquery())
    next_mailbox = (select(EmailMailbox.account_id)
                    .where(EmailMailbox.email_id == opener, EmailMailbox.account_id != account_id)
                    .order_by(EmailMailbox.id).limit(1).correlate(Ticket).scalar_subquery())
    db.session.execute(update(Ticket).where(Ticket.account_id == account_id).values(account_id=next_mailbox))
    db.session.execute(delete(EmailMailbox).where(EmailMailbox.account_id == account_id))


def delete_scanner(account_id: RowId) -> str:
    """Delete a scanner with its stored e-mails, run history, filters and grants; return its name.

    Dependants are deleted explicitly rather than left to ON DELETE CASCADE,
    because SQLite enforces foreign keys only when asked to.
    """
    account = get_scanner(account_id)
    name = account.name
    _hand_over_shared_mail(account.id)
    email_ids = select(Email.id).where(Email.account_id == account.id)
    db.session.execute(delete(EmailAttachment).where(EmailAttachment.email_id.in_(email_ids)))
    db.session.execute(delete(EmailLink).where(EmailLink.email_id.in_(email_ids)))
    db.session.execute(delete(Email).where(Email.account_id == account.id))
    db.session.execute(delete(ScanRun).where(ScanRun.account_id == account.id))
    db.session.execute(delete(PendingMailAction).where(PendingMailAction.account_id == account.id))
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


def set_enabled(account_id: RowId, enabled: bool) -> MailAccount:
    """Enable or disable a scanner (a disabled one is never scheduled)."""
    account = get_scanner(account_id)
    if account.enabled != bool(enabled):
        account.enabled = bool(enabled)
        audit.record("mail_scanner.enable" if enabled else "mail_scanner.disable",
                     f"mail scanner {account.id} ({account.name})")
        db.session.commit()
    return account


def list_scanners() -> list[MailAccount]:
    """Every scanner with its server and folders, by name."""
    return list(db.session.scalars(
        select(MailAccount).options(selectinload(MailAccount.server), selectinload(MailAccount.folders))
        .order_by(MailAccount.name, MailAccount.id)))
