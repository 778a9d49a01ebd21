"""Alerts for operators: stale scanners and hung runs, opened and closed.

``check_alerts()`` is called by the worker's scheduler loop. It compares
every enabled scanner against two conditions:

- ``no_success``: no successful run for ``ALERT_NO_SUCCESS_MINUTES`` (counted
  from the scanner's creation when it never succeeded);
- ``hung_run``: a run still "running" past ``MailSettings.run_timeout_minutes`` (a run importing
  an archive only once its heartbeat is that old too: it is long by nature).

Each condition opens one ``Alert`` row when it starts and closes it when it
recovers; administrators see open alerts as a banner and get one e-mail per
change (opened or recovered) through ALERT_SMTP_HOST, when it is configured.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from flask import Flask, current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Alert, MailAccount, MailSettings, ScanRun, User
from app.models.base import utcnow

logger = logging.getLogger(__name__)

# Statuses that count as a successful run.
SUCCESS_STATUSES = ("done", "partial")


@dataclass
class AlertChanges:
    """What one check did: alerts opened and closed, and whether the e-mail went out."""

    opened: list[Alert] = field(default_factory=list)
    closed: list[Alert] = field(default_factory=list)
    mailed: bool = False

    @property
    def changed(self) -> bool:
        """True when an alert opened or closed."""
        return bool(self.opened or self.closed)


def open_alerts(limit: int = 50) -> list[Alert]:
    """Open alerts, oldest first, with their scanners loaded (for the banner)."""
    return list(db.session.scalars(
        select(Alert).where(Alert.closed_at.is_(None)).options(selectinload(Alert.account))
        .order_by(Alert.opened_at, Alert.id).limit(limit)))


def _conditions(now) -> dict[tuple[str, int], str]:
    """(kind, account id) → message, for every condition that holds now."""
    settings = MailSettings.get()
    stale_minutes = int(current_app.config.get("ALERT_NO_SUCCESS_MINUTES") or 120)
    stale_before = now - timedelta(minutes=stale_minutes)
    hung_before = now - timedelta(minutes=int(settings.run_timeout_minutes or 30))

    accounts = db.session.scalars(select(MailAccount).where(MailAccount.enabled.is_(True))).all()
    found: dict[tuple[str, int], str] = {}
    for account in accounts:
        since = account.last_success_at or account.created_at
        if since is not None and since < stale_before:
            if account.last_success_at is None:
                what = "has never had a successful run"
            else:
                what = f"has had no successful run since {account.last_success_at:%Y-%m-%d %H:%M} UTC"
            reason = f" Last error: {account.last_error}" if account.last_error else ""
            found[("no_success", account.id)] = (
                f"Scanner {account.name!r} {what} (limit: {stale_minutes} minutes).{reason}")
    enabled_ids = {a.id for a in accounts}
    hung = db.session.execute(
        select(ScanRun.id, ScanRun.account_id, ScanRun.started_at, MailAccount.name)
        .join(MailAccount, MailAccount.id == ScanRun.account_id)
        .where(ScanRun.status == "running", ScanRun.started_at < hung_before,
               # An archive import is long by nature: it is hung only when its heartbeat stops too.
               or_(ScanRun.archived == 0, ScanRun.heartbeat_at.is_(None), ScanRun.heartbeat_at < hung_before))).all()
    for run_id, account_id, started_at, name in hung:
        if account_id in enabled_ids and ("hung_run", account_id) not in found:
            found[("hung_run", account_id)] = (
                f"Scanner {name!r} has had run #{run_id} running since {started_at:%Y-%m-%d %H:%M} UTC, "
                f"longer than the run timeout ({settings.run_timeout_minutes} minutes).")
    return found


def check_alerts() -> AlertChanges:
    """Open and close alerts to match the scanners' state now; e-mail administrators about changes.

    Commits its own changes. Safe to call from two processes at once: the
    unique index on open alerts turns a duplicate into a no-op.
    """
    now = utcnow()
    wanted = _conditions(now)
    current = {(a.kind, a.account_id): a
               for a in db.session.scalars(select(Alert).where(Alert.closed_at.is_(None)))}
    changes = AlertChanges()
    for key, alert in current.items():
        if key not in wanted:
            alert.closed_at = now
            changes.closed.append(alert)
    for key, message in wanted.items():
        if key in current:
            current[key].message = message
            continue
        alert = Alert(kind=key[0], account_id=key[1], opened_at=now, message=message)
        db.session.add(alert)
        changes.opened.append(alert)
    try:
        db.session.commit()
    except IntegrityError:
        # Another checker opened the same alert a moment ago; it also sends the e-mail.
        db.session.rollback()
        logger.info("alerts: another checker got there first; nothing changed")
        return AlertChanges()
    for alert in changes.opened:
        logger.warning("alert opened: %s", alert.message, extra={"alert_kind": alert.kind,
                                                               "account_id": alert.account_id})
    for alert in changes.closed:
        logger.info("alert recovered: %s", alert.message, extra={"alert_kind": alert.kind,
                                                               "account_id": alert.account_id})
    if changes.changed:
        changes.mailed = notify_admins(changes)
    return changes


def scheduled_check(app: Flask) -> AlertChanges:
    """The worker's periodic entry point (``schedule.PERIODIC`` calls targets with the app)."""
    with app.app_context():
        try:
            return check_alerts()
        finally:
            db.session.remove()


def _admin_addresses() -> list[str]:
    return [a for a in db.session.scalars(
        select(User.email).where(User.is_admin.is_(True), User.active.is_(True), User.email.is_not(None))) if a]


def compose(changes: AlertChanges, recipients: list[str]) -> EmailMessage:
    """The e-mail to administrators about the alerts that opened and recovered."""
    msg = EmailMessage()
    parts = []
    if changes.opened:
        parts.append(f"{len(changes.opened)} new")
    if changes.closed:
        parts.append(f"{len(changes.closed)} recovered")
    msg["Subject"] = f"[Corporate Mailboxes] Alerts: {', '.join(parts)}"
    sender = current_app.config.get("ALERT_SMTP_FROM") or "corporate-mailboxes@localhost"
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    # Mail clients sort by Date and thread by Message-ID; some servers reject mail without them.
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid("alert", domain=parseaddr(sender)[1].rpartition("@")[2] or "localhost")
    msg["Auto-Submitted"] = "auto-generated"  # so our own scanners never turn it into a ticket
    lines = []
    if changes.opened:
        lines.append("New alerts:")
        lines += [f"  - {a.message}" for a in changes.opened]
        lines.append("")
    if changes.closed:
        lines.append("Recovered:")
        lines += [f"  - {a.message}" for a in changes.closed]
        lines.append("")
    lines.append("See Mail tools → Queues and Logs → Mails – download history for details.")
    msg.set_content("\n".join(lines))
    return msg


def notify_admins(changes: AlertChanges) -> bool:
    """Send the alert e-mail; False (with a logged reason) when not configured or the server refuses."""
    host = current_app.config.get("ALERT_SMTP_HOST")
    if not host:
        logger.info("alerts: ALERT_SMTP_HOST is not set, so no alert e-mail was sent (banner only)")
        return False
    recipients = _admin_addresses()
    if not recipients:
        logger.info("alerts: no administrator has an e-mail address, so no alert e-mail was sent")
        return False
    config = current_app.config
    port = int(config.get("ALERT_SMTP_PORT") or 25)
    security = (config.get("ALERT_SMTP_SECURITY") or "none").lower()
    try:
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if security == "ssl" else smtplib.SMTP
        kwargs = {"context": context} if security == "ssl" else {}
        with smtp_class(host, port, timeout=10, **kwargs) as smtp:
            if security == "starttls":
                smtp.starttls(context=context)
            if config.get("ALERT_SMTP_USER"):
                smtp.login(config["ALERT_SMTP_USER"], config.get("ALERT_SMTP_PASSWORD") or "")
            smtp.send_message(compose(changes, recipients))
    except (OSError, smtplib.SMTPException) as exc:
        logger.warning("alerts: the alert e-mail could not be sent through %s:%s: %s", host, port, exc)
        return False
    logger.info("alerts: e-mail sent to %d administrator(s)", len(recipients))
    return True
