"""The unread counts on the mailbox buttons: refreshed by the worker's schedule, read from the cache by pages.

A web request never logs in to a mail server for a count: the top bar and its
poll (``unread_for``) read the cached ``MailAccount.unread_count``. The
worker's periodic ``scheduled_refresh`` asks every enabled mailbox that
somebody may open, once its count is older than the configured refresh
interval: one IMAP ``STATUS INBOX (UNSEEN)`` each, under a short timeout.
"""

from __future__ import annotations

import imaplib
import logging
import time
from datetime import datetime, timedelta

from flask import Flask, current_app
from imap_tools.errors import ImapToolsError
from sqlalchemy import or_, select, update

from app.connect import credentials
from app.connect.errors import CredentialError, MailConnectError
from app.connect.imap import open_imap
from app.extensions import db
from app.models import AutologinGrant, MailAccount
from app.models.base import utcnow
from app.services.autologin.grants import mailboxes_for, unread_display
from app.services.email_access import Viewer

log = logging.getLogger(__name__)

# Seconds one IMAP login and STATUS may take (UNREAD_TIMEOUT).
DEFAULT_TIMEOUT = 5.0
# Seconds one scheduler tick may spend on counts (UNREAD_TICK_SECONDS). The mailboxes left over are asked on
# the next tick, the oldest counts first, so a slow mail server never holds up the scheduling of scans for long.
DEFAULT_TICK_SECONDS = 20.0
# What a failed count looks like: the server, the login, the protocol, or the stored secret.
_COUNT_FAILURES = (CredentialError, MailConnectError, ImapToolsError, imaplib.IMAP4.error, OSError, ValueError)


def refresh_unread(account_id: int) -> int | None:
    """Ask the mailbox's IMAP server for its unread count (STATUS INBOX (UNSEEN)) and cache it.

    Returns the new count, or None when the server could not be asked (the old
    cached count is kept and the failure is logged without any secret).
    """
    account = db.session.get(MailAccount, account_id)
    if account is None:
        return None
    timeout = float(current_app.config.get("UNREAD_TIMEOUT", DEFAULT_TIMEOUT))
    try:
        secret = credentials.login_secret(account)
        mailbox = open_imap(account.server, account.login, secret, timeout=timeout)
        try:
            status = mailbox.folder.status("INBOX", ["UNSEEN"])
        finally:
            try:
                mailbox.logout()
            except (ImapToolsError, imaplib.IMAP4.error, OSError):  # the count is read; LOGOUT changes nothing
                pass
        count = int(status.get("UNSEEN", 0))
    except _COUNT_FAILURES as exc:
        log.warning("unread count of mailbox %s not refreshed: %s", account_id, type(exc).__name__)
        db.session.rollback()
        return None
    account.unread_count = count
    account.unread_checked_at = utcnow()
    db.session.commit()
    return count


def stale_mailboxes(stale_before: datetime) -> list[int]:
    """Ids of the enabled mailboxes with a grant whose count was last asked before ``stale_before``, oldest first."""
    granted = select(AutologinGrant.id).where(AutologinGrant.account_id == MailAccount.id).exists()
    return list(db.session.scalars(
        select(MailAccount.id)
        .where(MailAccount.enabled.is_(True), granted,
               or_(MailAccount.unread_checked_at.is_(None), MailAccount.unread_checked_at < stale_before))
        .order_by(MailAccount.unread_checked_at.asc().nulls_first(), MailAccount.id)))


def _claim(account_id: int, now: datetime, stale_before: datetime) -> bool:
    """Mark the count as being asked, by compare-and-set: of two workers' schedules, one asks."""
    claimed = db.session.execute(
        update(MailAccount)
        .where(MailAccount.id == account_id,
               or_(MailAccount.unread_checked_at.is_(None), MailAccount.unread_checked_at < stale_before))
        .values(unread_checked_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return claimed.rowcount == 1


def refresh_stale_counts(*, tick_seconds: float | None = None) -> list[int]:
    """Refresh every stale count (nothing when counts are switched off); returns the ids of the mailboxes asked.

    A mailbox whose server fails keeps its old count and is asked again one
    refresh interval later, not on every tick. Stops starting new mailboxes
    after ``tick_seconds`` (UNREAD_TICK_SECONDS); the rest wait for the next tick.
    """
    show_unread, refresh_seconds = unread_display()
    if not show_unread:
        db.session.commit()
        return []
    if tick_seconds is None:
        tick_seconds = float(current_app.config.get("UNREAD_TICK_SECONDS", DEFAULT_TICK_SECONDS))
    now = utcnow()
    stale_before = now - timedelta(seconds=refresh_seconds)
    candidates = stale_mailboxes(stale_before)
    db.session.commit()
    deadline = time.monotonic() + tick_seconds
    asked = []
    for account_id in candidates:
        if time.monotonic() >= deadline:
            break
        if _claim(account_id, now, stale_before):
            refresh_unread(account_id)
            asked.append(account_id)
    return asked


def scheduled_refresh(app: Flask) -> list[int]:
    """The worker's periodic entry point (``schedule.PERIODIC`` calls targets with the app)."""
    with app.app_context():
        try:
            return refresh_stale_counts()
        finally:
            db.session.remove()


def unread_for(user: Viewer) -> dict:
    """The JSON the top bar polls: the cached counts of the user's mailboxes; never talks to a mail server."""
    show_unread, refresh_seconds = unread_display()
    if not show_unread:
        return {"show": False, "refresh_seconds": refresh_seconds, "mailboxes": []}
    return {"show": True, "refresh_seconds": refresh_seconds,
            "mailboxes": [{"id": a.id, "name": a.name, "unread": a.unread_count} for a in mailboxes_for(user)]}
