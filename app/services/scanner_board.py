"""The administrator's board on the start page: every scanner's state, last success, mail of the last 24 h, alerts.

Built for a thousand scanners in a few plain queries (no ORM objects): the
scanners with their running run, the e-mails each stored per hour over the
last 24 hours (counted by the scan as it stores them, ``ScannerActivity``:
the e-mails themselves are never read), and the open alerts.

The states, most urgent first:

- ``disabled``: switched off; nothing else is said about it;
- ``blocked``: scans stopped after repeated login failures, or an OAuth
  mailbox that must be connected again;
- ``failing``: its last run failed;
- ``behind``: no successful run for ``ALERT_NO_SUCCESS_MINUTES`` (the alert's
  limit, counted from its creation when it never succeeded), or a run going
  on longer than the run timeout;
- ``healthy``: everything else.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from markupsafe import Markup
from sqlalchemy import select

from app.extensions import db
from app.models import Alert, MailAccount, MailSettings, ScanRun
from app.models.base import utcnow
from app.models.runs import hour_number

HOURS = 24
STATES = ("failing", "blocked", "behind", "disabled", "healthy")
# The order of the board: what needs a person first.
_URGENCY = {"blocked": 0, "failing": 1, "behind": 2, "healthy": 3, "disabled": 4}
DEFAULT_NO_SUCCESS_MINUTES = 120
DEFAULT_RUN_TIMEOUT_MINUTES = 30
# The sparkline's box, in SVG units: one step per hour, whole numbers (a thousand lines are written per page).
SPARK_STEP = 4
SPARK_WIDTH = SPARK_STEP * (HOURS - 1)
SPARK_HEIGHT = 20
_X = [f"{i * SPARK_STEP}," for i in range(HOURS)]
_FLAT = Markup(" ".join(f"{i * SPARK_STEP},{SPARK_HEIGHT}" for i in range(HOURS)))


@dataclass
class ScannerTile:
    """One scanner on the board."""

    id: int
    name: str
    state: str
    reason: str
    last_success_at: datetime | None
    per_hour: list[int]
    alerts: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        """E-mails stored in the last 24 hours."""
        return sum(self.per_hour)

    @property
    def sparkline(self) -> Markup:
        """The points of an SVG polyline of ``per_hour``, oldest hour on the left (numbers only: safe markup)."""
        peak = max(self.per_hour)
        if not peak:
            return _FLAT
        return Markup(" ".join([x + str(SPARK_HEIGHT - SPARK_HEIGHT * n // peak)
                                for x, n in zip(_X, self.per_hour, strict=True)]))


@dataclass
class Board:
    """Every scanner, most urgent first, with the count per state."""

    tiles: list[ScannerTile]
    counts: dict[str, int]
    since: datetime
    open_alerts: int


def window_start(now: datetime) -> datetime:
    """The start of the board's 24 hours: the current hour and the 23 before it."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)


_ACTIVITY_SQL = "SELECT account_id, hour, messages FROM scanner_activity WHERE hour >= {}"


def messages_per_hour(now: datetime) -> dict[int, list[int]]:
    """Scanner id → e-mails stored in each of the last 24 hours (only scanners that stored any).

    Read from the counts the scan keeps per hour (``ScannerActivity``): at most 24 rows a
    scanner, whatever the number of e-mails.
    """
    first = hour_number(now) - (HOURS - 1)
    # Plain SQL through the connection: a day of counts is 24,000 rows for 1,000 scanners, and the ORM's
    # (or even the compiled select's) per-row work measured as much as the query itself.
    connection = db.session.connection()
    marker = "%s" if connection.dialect.paramstyle in ("format", "pyformat") else "?"
    rows = connection.exec_driver_sql(_ACTIVITY_SQL.format(marker), (first,))
    result: dict[int, list[int]] = {}
    for account_id, hour, messages in rows:
        counts = result.get(account_id)
        if counts is None:
            counts = result[account_id] = [0] * HOURS
        if hour - first < HOURS:
            counts[hour - first] = messages
    return result


def _alerts_by_scanner() -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for account_id, message in db.session.execute(
            select(Alert.account_id, Alert.message).where(Alert.closed_at.is_(None)).order_by(Alert.opened_at)):
        found.setdefault(account_id, []).append(message)
    return found


def state_of(row, now: datetime, stale_before: datetime, hung_before: datetime) -> tuple[str, str]:
    """(state, reason in words) of one scanner row; see the module docstring for the states."""
    if not row.enabled:
        return "disabled", "Disabled: not scanned."
    if row.health in ("blocked", "reconnect"):
        reason = (row.blocked_reason or "").strip()
        if row.health == "reconnect":
            return "blocked", "Reconnect needed: " + (reason or "the account's token was refused.")
        return "blocked", reason or "Blocked after repeated login failures. Use Test login to unblock it."
    if row.last_run_status == "failed":
        return "failing", row.last_error or "The last run failed; its history says why."
    if row.run_started_at is not None and row.run_started_at < hung_before:
        return "behind", f"A run has been going on since {row.run_started_at:%Y-%m-%d %H:%M} UTC."
    since = row.last_success_at or row.created_at
    if since is not None and since < stale_before:
        if row.last_success_at is None:
            return "behind", "No successful run yet."
        return "behind", f"No successful run since {row.last_success_at:%Y-%m-%d %H:%M} UTC."
    return "healthy", "Healthy."


def board(now: datetime | None = None) -> Board:
    """Every scanner's tile, most urgent first, then by name."""
    now = now or utcnow()
    stale_minutes = int(current_app.config.get("ALERT_NO_SUCCESS_MINUTES") or DEFAULT_NO_SUCCESS_MINUTES)
    run_timeout = db.session.scalar(select(MailSettings.run_timeout_minutes)) or DEFAULT_RUN_TIMEOUT_MINUTES
    stale_before = now - timedelta(minutes=stale_minutes)
    hung_before = now - timedelta(minutes=run_timeout)
    rows = db.session.connection().execute(
        select(MailAccount.id, MailAccount.name, MailAccount.enabled, MailAccount.health,
               MailAccount.blocked_reason, MailAccount.last_run_status, MailAccount.last_error,
               MailAccount.last_success_at, MailAccount.created_at, ScanRun.started_at.label("run_started_at"))
        .outerjoin(ScanRun, (ScanRun.id == MailAccount.running_run_id) & (ScanRun.status == "running"))).all()
    per_hour = messages_per_hour(now)
    alerts = _alerts_by_scanner()
    quiet = [0] * HOURS
    tiles = []
    for row in rows:
        state, reason = state_of(row, now, stale_before, hung_before)
        tiles.append(ScannerTile(row.id, row.name, state, reason, row.last_success_at,
                                 per_hour.get(row.id, quiet), alerts.get(row.id, [])))
    tiles.sort(key=lambda t: (_URGENCY[t.state], t.name.lower(), t.id))
    counts = Counter(t.state for t in tiles)
    return Board(tiles=tiles, counts={s: counts.get(s, 0) for s in STATES}, since=window_start(now),
                 open_alerts=sum(len(a) for a in alerts.values()))
