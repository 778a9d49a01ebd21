"""The Watch page: each scanner's watch state, its backlog, and the live watchers with their figures.

Read from Redis (what the watchers wrote, ``app.watch.state`` and ``app.watch.telemetry``) and the
database (the scanners, and the backlog their last run counted: ``mail_accounts.backlog``). A dead
Redis makes the page say so in words.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.jobqueue.connection import redis_connection, unreachable_message
from app.models import MailAccount
from app.watch import state, telemetry
from app.watch.state import WatchState

logger = logging.getLogger(__name__)

LABELS = {"idle": "IDLE", "notify": "NOTIFY", "polling": "polling", "connecting": "connecting",
          "reconnecting": "reconnecting", "off": "off"}


@dataclass
class ScannerWatch:
    """One scanner's line on the page."""

    account_id: int
    name: str
    server: str
    enabled: bool
    watch: WatchState | None
    backlog: int | None  # new messages on the server the scans have yet to store, as the last run counted

    @property
    def label(self) -> str:
        if not self.enabled:
            return "off (scanner disabled)"
        return LABELS.get(self.watch.state, self.watch.state) if self.watch else "off"


@dataclass
class WatchOverview:
    """The page's content, or ``error`` in words."""

    scanners: list[ScannerWatch] = field(default_factory=list)
    watchers: dict[str, dict] = field(default_factory=dict)
    error: str | None = None


def overview() -> WatchOverview:
    """Every scanner with its watch state and backlog, and the live watchers; never raises for Redis."""
    accounts = db.session.scalars(select(MailAccount).options(selectinload(MailAccount.server))
                                  .order_by(MailAccount.name)).all()
    if current_app.config.get("QUEUE_MODE") == "inline":
        return WatchOverview(error="Scans run inside the web process (QUEUE_MODE=inline): there is no "
                                   "watcher. Run Redis, the worker and python watcher.py to get mail as it "
                                   "arrives.")
    conn = redis_connection()
    try:
        states = state.read_states(conn, [a.id for a in accounts])
        watchers = telemetry.read_figures(conn)
    except redis.RedisError as exc:
        logger.warning("watch page: Redis unreachable: %s", exc)
        return WatchOverview(error=unreachable_message(current_app.config["REDIS_URL"]))
    rows = [ScannerWatch(a.id, a.name, a.server.name if a.server else "", bool(a.enabled), states.get(a.id),
                         a.backlog) for a in accounts]
    for figures in watchers.values():
        started = figures.get("started_at")
        figures["started"] = datetime.fromtimestamp(started, UTC).replace(tzinfo=None) if started else None
    return WatchOverview(scanners=rows, watchers=watchers)
