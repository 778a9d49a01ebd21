"""The Prometheus text exposition of the product's figures, written by hand (format 0.0.4).

Figures come from the database (download history, scanners, alerts) with a
handful of aggregate queries, and from Redis (queue registries, workers).
A dead Redis does not fail the scrape: ``cm_redis_up`` says 0.
"""

from __future__ import annotations

import logging
from datetime import UTC

import redis
from flask import current_app
from rq import Worker
from sqlalchemy import case, func, select

from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.models import Alert, AutologinEvent, MailAccount, ScanRun
from app.models.runs import RUN_STATUSES
from app.services.queues import queue_names, registry_counts

logger = logging.getLogger(__name__)

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600)

# Sums over the download history: (metric name, ScanRun column, help).
RUN_TOTALS = (
    ("cm_messages_downloaded_total", ScanRun.downloaded, "Messages downloaded by all scan runs."),
    ("cm_emails_created_total", ScanRun.created, "E-mail records created by scan runs."),
    ("cm_emails_bound_total", ScanRun.bound, "E-mails bound to records by scan runs."),
    ("cm_tickets_created_total", ScanRun.tickets_created, "Tickets created by scan runs."),
    ("cm_tickets_reopened_total", ScanRun.tickets_reopened, "Tickets reopened by scan runs."),
    ("cm_messages_ignored_total", ScanRun.ignored, "Messages skipped by ignore filters."),
    ("cm_message_errors_total", ScanRun.errors, "Messages that could not be processed."),
)


class _Out:
    def __init__(self):
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value, labels: dict | None = None) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
            name = f"{name}{{{inner}}}"
        self.lines.append(f"{name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value) -> str:
    if value is None:
        return "0"
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _duration_seconds():
    """finished_at - started_at in seconds, in the dialect at hand."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", ScanRun.finished_at - ScanRun.started_at)
    return (func.julianday(ScanRun.finished_at) - func.julianday(ScanRun.started_at)) * 86400.0


def render_metrics() -> str:
    """Every metric, as the body of a /metrics answer."""
    out = _Out()
    _runs(out)
    _scanners(out)
    _queues(out)
    return out.text()


def _runs(out: _Out) -> None:
    by_status = dict(db.session.execute(select(ScanRun.status, func.count()).group_by(ScanRun.status)).all())
    out.family("cm_scan_runs", "gauge", "Scan runs in the download history, by status.")
    for status in sorted(set(RUN_STATUSES) | set(by_status)):
        out.sample("cm_scan_runs", by_status.get(status, 0), {"status": status})

    sums = db.session.execute(select(*[func.coalesce(func.sum(col), 0) for _, col, _ in RUN_TOTALS])).one()
    for (name, _, help_text), value in zip(RUN_TOTALS, sums, strict=True):
        out.family(name, "counter", help_text)
        out.sample(name, value)

    duration = _duration_seconds()
    finished = ScanRun.finished_at.is_not(None)
    columns = [func.count(), func.coalesce(func.sum(duration), 0.0)]
    columns += [func.coalesce(func.sum(case((duration <= b, 1), else_=0)), 0) for b in DURATION_BUCKETS]
    row = db.session.execute(select(*columns).where(finished)).one()
    count, total = row[0], float(row[1] or 0.0)
    name = "cm_scan_run_duration_seconds"
    out.family(name, "histogram", "Duration of finished scan runs.")
    for bound, value in zip(DURATION_BUCKETS, row[2:], strict=True):
        out.sample(f"{name}_bucket", value, {"le": str(float(bound))})
    out.sample(f"{name}_bucket", count, {"le": "+Inf"})
    out.sample(f"{name}_sum", round(total, 3))
    out.sample(f"{name}_count", count)


def _scanners(out: _Out) -> None:
    state = case((MailAccount.enabled.is_(False), "disabled"), else_=MailAccount.health)
    by_state = dict(db.session.execute(select(state, func.count()).group_by(state)).all())
    out.family("cm_scanners", "gauge", "Scanners by state (active, blocked, reconnect, disabled).")
    for name in sorted({"active", "blocked", "reconnect", "disabled"} | set(by_state)):
        out.sample("cm_scanners", by_state.get(name, 0), {"state": name})
    out.family("cm_scanners_blocked", "gauge", "Enabled scanners blocked after login failures or a dead token.")
    out.sample("cm_scanners_blocked", sum(v for k, v in by_state.items() if k in ("blocked", "reconnect")))
    open_alerts = dict(db.session.execute(
        select(Alert.kind, func.count()).where(Alert.closed_at.is_(None)).group_by(Alert.kind)).all())
    out.family("cm_alerts_open", "gauge", "Open alerts, by kind.")
    for kind in sorted({"no_success", "hung_run"} | set(open_alerts)):
        out.sample("cm_alerts_open", open_alerts.get(kind, 0), {"kind": kind})

    # One series per scanner (a handful), so Prometheus can alert on staleness itself.
    rows = db.session.execute(select(MailAccount.id, MailAccount.name, MailAccount.last_success_at)
                              .where(MailAccount.enabled.is_(True)).order_by(MailAccount.id)).all()
    out.family("cm_scanner_last_success_timestamp_seconds", "gauge",
               "Unix time of each enabled scanner's last successful run (0: never).")
    for account_id, name, last in rows:
        stamp = last.replace(tzinfo=UTC).timestamp() if last else 0
        out.sample("cm_scanner_last_success_timestamp_seconds", float(stamp),
                   {"account_id": account_id, "scanner": name})

    # Hand-off outcomes: "refused: <why>" is grouped under "refused" to keep the label set small.
    outcomes = db.session.execute(select(AutologinEvent.outcome, func.count()).group_by(AutologinEvent.outcome)).all()
    handoffs: dict[str, int] = {"issued": 0, "redeemed": 0, "refused": 0}
    for outcome, n in outcomes:
        key = (outcome or "unknown").split(":", 1)[0].strip() or "unknown"
        handoffs[key] = handoffs.get(key, 0) + n
    out.family("cm_handoffs_total", "counter", "Mailbox hand-offs to Roundcube, by outcome.")
    for key in sorted(handoffs):
        out.sample("cm_handoffs_total", handoffs[key], {"outcome": key})


def _queues(out: _Out) -> None:
    if current_app.config.get("QUEUE_MODE") == "inline":
        out.family("cm_queue_inline", "gauge", "1 when scans run in-process instead of on RQ workers.")
        out.sample("cm_queue_inline", 1)
        return
    conn = redis_connection()
    try:
        counts = {name: registry_counts(conn, name) for name in queue_names()}
        workers = Worker.all(connection=conn)
    except redis.RedisError as exc:
        logger.warning("metrics: Redis unreachable: %s", exc.__class__.__name__)
        out.family("cm_redis_up", "gauge", "1 when Redis answered this scrape.")
        out.sample("cm_redis_up", 0)
        return
    out.family("cm_redis_up", "gauge", "1 when Redis answered this scrape.")
    out.sample("cm_redis_up", 1)
    out.family("cm_queue_jobs", "gauge", "Jobs per queue and registry.")
    for queue, registries in counts.items():
        for registry, value in registries.items():
            out.sample("cm_queue_jobs", value, {"queue": queue, "registry": registry})
    out.family("cm_queue_failed_jobs", "gauge", "Failed jobs waiting for a retry, per queue.")
    for queue, registries in counts.items():
        out.sample("cm_queue_failed_jobs", registries["failed"], {"queue": queue})
    out.family("cm_workers", "gauge", "RQ workers alive.")
    out.sample("cm_workers", len(workers))
