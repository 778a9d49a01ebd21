"""Who may see which stored e-mail: the one rule every mail view goes through.

Administrators see every e-mail. An ordinary user sees an e-mail only when
they were granted a mailbox it reached (an ``AutologinGrant`` for one of the
e-mail's ``EmailMailbox`` links: a message sent to two scanned mailboxes is
stored once and seen by the users of either).
Anything else is answered as if it did not exist (404), so that ids of other
mailboxes' mail cannot be probed.
"""

from __future__ import annotations

from flask import abort
from flask_login import AnonymousUserMixin
from sqlalchemy import ColumnElement, Select, false, select, true
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.base import ExecutableOption

from app.extensions import db
from app.models import AutologinGrant, Email, EmailMailbox, MailAccount, User

# Whoever a view serves: a logged-in user, or the anonymous one.
Viewer = User | AnonymousUserMixin | None


def is_admin(user: Viewer) -> bool:
    """True for a logged-in administrator."""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_admin", False))


def visible_account_ids(user: Viewer) -> set[int] | None:
    """The mailbox ids whose mail ``user`` may read; None means every mailbox (administrators)."""
    if is_admin(user):
        return None
    if not getattr(user, "is_authenticated", False):
        return set()
    return set(db.session.scalars(
        select(AutologinGrant.account_id).where(AutologinGrant.user_id == user.id)))


def _granted_accounts(user: User) -> Select:
    # A subquery rather than a list of ids, so that a filtered page stays one statement.
    return select(AutologinGrant.account_id).where(AutologinGrant.user_id == user.id).scalar_subquery()


def email_visibility(user: Viewer,
                     account_column: QueryableAttribute[int] | None = None) -> ColumnElement[bool]:
    """A WHERE clause keeping only e-mails ``user`` may see: e-mails that reached a mailbox granted to
    them. With ``account_column`` (a mailbox id column, e.g. ``MailAccount.id``): only mailboxes they
    may read."""
    if is_admin(user):
        return true()
    if not getattr(user, "is_authenticated", False):
        return false()
    if account_column is not None:
        return account_column.in_(_granted_accounts(user))
    return select(EmailMailbox.id).where(EmailMailbox.email_id == Email.id,
                                         EmailMailbox.account_id.in_(_granted_accounts(user))).exists()


def restrict_emails(query: Select, user: Viewer) -> Select:
    """Apply :func:`email_visibility` to a select over ``Email``."""
    return query.where(email_visibility(user))


def can_see_email(user: Viewer, email: Email) -> bool:
    """True when ``user`` may read ``email`` (its body, attachments and original)."""
    if is_admin(user):
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    return db.session.scalar(
        select(EmailMailbox.id).where(EmailMailbox.email_id == email.id,
                                      EmailMailbox.account_id.in_(_granted_accounts(user))).limit(1)) is not None


def reached_mailboxes(email_id: int, user: Viewer) -> list:
    """The mailboxes an e-mail reached that ``user`` may read: (id, name, folder, uid, first_seen_at),
    first reached first."""
    return db.session.execute(
        select(MailAccount.id, MailAccount.name, EmailMailbox.folder, EmailMailbox.uid, EmailMailbox.first_seen_at)
        .join(MailAccount, MailAccount.id == EmailMailbox.account_id)
        .where(EmailMailbox.email_id == email_id, email_visibility(user, MailAccount.id))
        .order_by(EmailMailbox.first_seen_at, EmailMailbox.id)).all()


def mailbox_names(user: Viewer, email_ids: list[int] | set[int]) -> dict[int, str]:
    """For each e-mail id, the name of the first mailbox it reached that ``user`` may read (one query).

    Lists name this one rather than the mailbox the e-mail was stored from first, which a user
    granted only a later mailbox may not read (its name is not theirs to see).
    """
    if not email_ids:
        return {}
    names: dict[int, str] = {}
    for email_id, name in db.session.execute(
            select(EmailMailbox.email_id, MailAccount.name)
            .join(MailAccount, MailAccount.id == EmailMailbox.account_id)
            .where(EmailMailbox.email_id.in_(sorted(email_ids)), email_visibility(user, MailAccount.id))
            .order_by(EmailMailbox.email_id, EmailMailbox.first_seen_at, EmailMailbox.id)):
        names.setdefault(email_id, name)
    return names


def get_visible_email_or_404(email_id: int, user: Viewer, *options: ExecutableOption) -> Email:
    """The e-mail with that id when ``user`` may see it; 404 otherwise (existence not revealed)."""
    query = select(Email).where(Email.id == email_id, email_visibility(user))
    if options:
        query = query.options(*options)
    email = db.session.scalar(query)
    if email is None:
        abort(404)
    return email
