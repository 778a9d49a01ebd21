"""How long the tables that anyone can make grow keep their rows, and the periodic pruning.

Autologin events (every hand-off and every refusal, including refused
redeems from the internet) are kept ``AUTOLOGIN_EVENT_RETENTION_DAYS`` (90);
autologin tokens ``AUTOLOGIN_TOKEN_RETENTION_HOURS`` (24) after they expired
(used or not: until then a late redeem is told "used" or "expired" rather
than "unknown"); login-throttle counters as soon as they no longer count; a CSV file uploaded for import
and never imported a day (app.services.record_imports.prune_imports); the scanners' mail per hour
(``ScannerActivity``, which the start page reads for the last 24 hours) after two days.
The worker runs :func:`scheduled_prune` every hour (``app.tasks.schedule.PERIODIC``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete

from app.extensions import db
from app.models import AutologinEvent, AutologinToken, ScannerActivity
from app.models.base import utcnow
from app.models.runs import hour_number
from app.services import login_throttle, record_imports

log = logging.getLogger(__name__)

# The board shows a day; a second day keeps the window whole across a late or missed prune.
ACTIVITY_KEPT = timedelta(days=2)


@dataclass
class Pruned:
    events: int = 0
    tokens: int = 0
    throttles: int = 0
    imports: int = 0
    activity: int = 0


def prune(now: datetime | None = None) -> Pruned:
    """Delete the rows past their retention; returns how many of each kind went."""
    now = now or utcnow()
    cfg = current_app.config
    event_days = int(cfg.get("AUTOLOGIN_EVENT_RETENTION_DAYS", 90))
    token_hours = int(cfg.get("AUTOLOGIN_TOKEN_RETENTION_HOURS", 24))
    pruned = Pruned()
    pruned.events = db.session.execute(
        delete(AutologinEvent).where(AutologinEvent.at < now - timedelta(days=event_days))).rowcount or 0
    pruned.tokens = db.session.execute(
        delete(AutologinToken).where(AutologinToken.expires_at < now - timedelta(hours=token_hours))).rowcount or 0
    pruned.activity = db.session.execute(
        delete(ScannerActivity).where(ScannerActivity.hour < hour_number(now - ACTIVITY_KEPT))).rowcount or 0
    db.session.commit()
    pruned.throttles = login_throttle.prune(now)
    pruned.imports = record_imports.prune_imports(now)
    if pruned.events or pruned.tokens or pruned.throttles or pruned.imports:
        log.info("pruned %s autologin event(s), %s token(s), %s login-throttle counter(s), %s import(s)",
                 pruned.events, pruned.tokens, pruned.throttles, pruned.imports)
    return pruned


def scheduled_prune(app) -> Pruned:
    """The worker's periodic entry point (``schedule.PERIODIC`` calls targets with the app)."""
    with app.app_context():
        try:
            return prune()
        finally:
            db.session.remove()
