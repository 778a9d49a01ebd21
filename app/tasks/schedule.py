"""The periodic work, declared as data, and the function the worker's scheduler loop calls."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import Flask
from sqlalchemy import or_, select

logger = logging.getLogger(__name__)

# name → (seconds between checks, dotted function taking the app). The worker's loop runs each when due.
PERIODIC = {
    "enqueue-due-scans": (30, "app.tasks.schedule.enqueue_due"),
    "check-alerts": (60, "app.services.alerts.scheduled_check"),
    # Asks only the mailboxes whose count is older than the mail configuration's refresh interval.
    "refresh-unread-counts": (30, "app.services.autologin.unread.scheduled_refresh"),
    # Autologin events and tokens, and login-throttle counters, past their retention (app/services/retention.py).
    "prune-tables": (3600, "app.services.retention.scheduled_prune"),
}


def due_scanners(now=None, watched: set[int] | None = None, backstop: timedelta | None = None) -> list[int]:
    """Enabled, non-blocked scanners whose last run is older than the check frequency (or never ran).

    An OAuth 2.0 scanner is due only once its account is connected: before that every run
    would only fail with "not connected yet".

    A scanner in ``watched`` (a watcher listens to it: IDLE, NOTIFY or its own polling) is due only
    once its last run is older than ``backstop``: the watcher enqueues its scans when mail comes.
    """
    from app.extensions import db
    from app.models import MailAccount, MailServer, MailSettings
    from app.models.base import utcnow

    now = now or utcnow()
    every = timedelta(minutes=MailSettings.get().check_frequency_minutes or 5)
    rows = db.session.execute(
        select(MailAccount.id, MailAccount.last_run_at)
        .join(MailServer, MailServer.id == MailAccount.server_id)
        .where(MailAccount.enabled.is_(True), MailAccount.health != "blocked",
               MailAccount.running_run_id.is_(None),
               or_(MailServer.auth_method != "oauth2", MailAccount.oauth_refresh_token_enc.is_not(None)))
        .order_by(MailAccount.id)).all()
    db.session.commit()
    watched = watched or set()
    backstop = max(backstop or timedelta(hours=1), every)
    return [aid for aid, last in rows if last is None or now - last >= (backstop if aid in watched else every)]


def watched_scanners(app: Flask) -> set[int]:
    """The scanners a live watcher listens to (none when Redis cannot say: they are all polled)."""
    from redis.exceptions import RedisError

    from app.extensions import db
    from app.jobqueue.connection import redis_connection
    from app.models import MailAccount
    from app.watch.state import watched_ids

    if app.config.get("QUEUE_MODE") != "redis":
        return set()
    ids = list(db.session.scalars(select(MailAccount.id).where(MailAccount.enabled.is_(True))))
    try:
        return watched_ids(redis_connection(app), ids)
    except RedisError:
        return set()


def enqueue_due(app: Flask) -> list[str]:
    """Enqueue a scan for every due scanner (already queued or running ones are left alone)."""
    from app.extensions import db
    from app.models import MailAccount
    from app.scanning.liveness import close_dead_runs
    from app.services import scans

    job_ids = []
    held = select(MailAccount.id).where(MailAccount.running_run_id.is_not(None))
    with app.app_context():
        running = set(db.session.scalars(held))
        close_dead_runs()
        # A mailbox freed from a dead run (a worker killed, here or on another host) is scanned again at
        # once: its run stopped half-way, and a watched scanner would otherwise wait for the backstop.
        freed = running - set(db.session.scalars(held))
        backstop = timedelta(minutes=app.config.get("WATCH_BACKSTOP_MINUTES") or 60)
        due = due_scanners(watched=watched_scanners(app), backstop=backstop)
        for account_id in sorted(set(due) | freed):
            try:
                job_ids.append(scans.enqueue_scan(account_id, trigger="schedule"))
            except Exception:  # one scanner's problem never stops the others being scheduled
                logger.exception("could not enqueue the scan of scanner %s", account_id)
    return job_ids
