"""Who may open which mailbox: the grants administrators set, and the mailbox buttons a user sees."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from app.extensions import db
from app.models import AutologinGrant, MailAccount, MailSettings, User
from app.services import audit
from app.services.email_access import Viewer

# The mail configuration's defaults, used until the settings row exists.
DEFAULT_SHOW_UNREAD = True
DEFAULT_REFRESH_SECONDS = 300
# The shortest refresh interval honoured, whatever the settings row holds.
MIN_REFRESH_SECONDS = 10


def grants_by_account() -> dict[int, set[int]]:
    """For each mailbox id, the ids of the users allowed to open it."""
    result: dict[int, set[int]] = {}
    for account_id, user_id in db.session.execute(select(AutologinGrant.account_id, AutologinGrant.user_id)):
        result.setdefault(account_id, set()).add(user_id)
    return result


def set_grants(account_id: int, user_ids: Iterable[int]) -> tuple[set[int], set[int]]:
    """Make exactly ``user_ids`` the users who may open mailbox ``account_id`` (empty = nobody).

    Returns (added, removed) user ids. Tokens minted before a removal stay in
    the table on purpose: redeem checks the grant again and refuses them as
    "revoked", so the user and the hand-off log get the precise reason.
    """
    account = db.session.get(MailAccount, account_id)
    if account is None:
        raise LookupError(f"No mailbox with id {account_id}.")
    wanted = set(user_ids)
    if wanted:
        known = set(db.session.scalars(select(User.id).where(User.id.in_(wanted))))
        unknown = wanted - known
        if unknown:
            raise ValueError("Unknown users: " + ", ".join(str(u) for u in sorted(unknown)))
    current = set(db.session.scalars(select(AutologinGrant.user_id).where(AutologinGrant.account_id == account_id)))
    added, removed = wanted - current, current - wanted
    if removed:
        db.session.execute(delete(AutologinGrant).where(AutologinGrant.account_id == account_id,
                                                         AutologinGrant.user_id.in_(removed)))
    for user_id in sorted(added):
        db.session.add(AutologinGrant(account_id=account_id, user_id=user_id))
    if added or removed:
        names = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(added | removed))).all())
        details = "; ".join(part for part in (
            "granted: " + ", ".join(sorted(names[u] for u in added)) if added else "",
            "removed: " + ", ".join(sorted(names[u] for u in removed)) if removed else "") if part)
        audit.record("autologin.grants", f"mailbox {account.name} (#{account.id})", details)
    db.session.commit()
    return added, removed


def has_grant(user_id: int, account_id: int) -> bool:
    """True when the user may open the mailbox."""
    return db.session.scalar(select(AutologinGrant.id).where(
        AutologinGrant.user_id == user_id, AutologinGrant.account_id == account_id)) is not None


def mailboxes_for(user: Viewer) -> list[MailAccount]:
    """The enabled mailboxes ``user`` may open, by name (none for a disabled user)."""
    if user is None or not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", True):
        return []
    return list(db.session.scalars(
        select(MailAccount)
        .join(AutologinGrant, AutologinGrant.account_id == MailAccount.id)
        .where(AutologinGrant.user_id == user.id, MailAccount.enabled.is_(True))
        .order_by(MailAccount.name, MailAccount.id)))


def unread_display() -> tuple[bool, int]:
    """(show unread counts, seconds between refreshes), without creating the settings row on a page view."""
    row = db.session.get(MailSettings, 1)
    if row is None:
        return DEFAULT_SHOW_UNREAD, DEFAULT_REFRESH_SECONDS
    return bool(row.show_unread), max(MIN_REFRESH_SECONDS, int(row.unread_refresh_seconds or DEFAULT_REFRESH_SECONDS))


def mailbox_buttons(user: Viewer) -> list[dict]:
    """The top bar's mailbox buttons: [{id, name, unread}] from the cached counts.

    Never talks to IMAP, so rendering a page never waits on a mail server;
    ``unread`` is None when the mail configuration switches counts off.
    """
    accounts = mailboxes_for(user)
    show_unread, _ = unread_display()
    return [{"id": a.id, "name": a.name, "unread": a.unread_count if show_unread else None}
            for a in accounts]
