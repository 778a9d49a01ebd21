"""The product's figures for Prometheus, rendered by prometheus_client (text format 0.0.4).

A custom collector reads them at scrape time: from the database (download history, scanners,
alerts, hand-offs) with a handful of aggregate queries, and from Redis (queue registries, workers).
A dead Redis does not fail the scrape: ``cm_redis_up`` says 0. Each scrape gets a private
registry, so nothing here touches prometheus_client's global default registry, and nothing is
counted in the web process: every figure is read afresh from where it is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC

import redis
from flask import current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from rq import Worker
from sqlalchemy import case, func, select

from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.models import Alert, AutologinEvent, MailAccount, ScanRun
from app.models.runs import RUN_STATUSES
from app.scanner.types import HELD_KINDS
from app.services.queues import queue_names, registry_counts
from app.watch import state, telemetry

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

REDIS_UP_HELP = "1 when Redis answered this scrape."


class ProductCollector:
    """Every figure of the product, read when Prometheus scrapes (inside a Flask app context)."""

    def collect(self) -> Iterator[Metric]:
        """The metric families, in the order /metrics lists them."""
        yield from _runs()
        yield from _scanners()
        yield from _queues()
        yield from _watch()


def render_metrics() -> bytes:
    """Every metric, as the body of a /metrics answer."""
    registry = CollectorRegistry()
    registry.register(ProductCollector())
    return generate_latest(registry)


def _duration_seconds():
    """finished_at - started_at in seconds, in the dialect at hand."""
    if db.engine.dialect.name == "postgresql":
        return func.extract("epoch", ScanRun.finished_at - ScanRun.started_at)
    return (func.julianday(ScanRun.finished_at) - func.julianday(ScanRun.started_at)) * 86400.0


def _runs() -> Iterator[Metric]:
    by_status = dict(db.session.execute(select(ScanRun.status, func.count()).group_by(ScanRun.status)).all())
    runs = GaugeMetricFamily("cm_scan_runs", "Scan runs in the download history, by status.", labels=["status"])
    for status in sorted(set(RUN_STATUSES) | set(by_status)):
        runs.add_metric([status], by_status.get(status, 0))
    yield runs

    columns = [col for _, col, _ in RUN_TOTALS] + [getattr(ScanRun, kind) for kind in HELD_KINDS]
    sums = db.session.execute(select(*[func.coalesce(func.sum(col), 0) for col in columns])).one()
    for (name, _, help_text), value in zip(RUN_TOTALS, sums, strict=False):
        yield CounterMetricFamily(name, help_text, value=value or 0)
    held = CounterMetricFamily("cm_messages_held_total", "Messages stored without opening or reopening "
                               "tickets, by why (archive, spam, automatic, filter, no_sender, loop).",
                               labels=["reason"])
    for kind, value in zip(HELD_KINDS, sums[len(RUN_TOTALS):], strict=True):
        held.add_metric([kind], value or 0)
    yield held

    duration = _duration_seconds()
    finished = ScanRun.finished_at.is_not(None)
    columns = [func.count(), func.coalesce(func.sum(duration), 0.0)]
    columns += [func.coalesce(func.sum(case((duration <= b, 1), else_=0)), 0) for b in DURATION_BUCKETS]
    row = db.session.execute(select(*columns).where(finished)).one()
    count, total = row[0], float(row[1] or 0.0)
    # The buckets are cumulative (runs at most that long); "+Inf" holds every finished run.
    buckets = [(str(float(bound)), value) for bound, value in zip(DURATION_BUCKETS, row[2:], strict=True)]
    buckets.append(("+Inf", count))
    yield HistogramMetricFamily("cm_scan_run_duration_seconds", "Duration of finished scan runs.",
                                buckets=buckets, sum_value=round(total, 3))


def _scanners() -> Iterator[Metric]:
    state = case((MailAccount.enabled.is_(False), "disabled"), else_=MailAccount.health)
    by_state: dict[str, int] = dict(db.session.execute(select(state, func.count()).group_by(state)).all())
    scanners = GaugeMetricFamily("cm_scanners", "Scanners by state (active, blocked, reconnect, disabled).",
                                 labels=["state"])
    for name in sorted({"active", "blocked", "reconnect", "disabled"} | set(by_state)):
        scanners.add_metric([name], by_state.get(name, 0))
    yield scanners
    yield GaugeMetricFamily("cm_scanners_blocked", "Enabled scanners blocked after login failures or a dead token.",
                            value=sum(v for k, v in by_state.items() if k in ("blocked", "reconnect")))

    open_alerts = dict(db.session.execute(
        select(Alert.kind, func.count()).where(Alert.closed_at.is_(None)).group_by(Alert.kind)).all())
    alerts = GaugeMetricFamily("cm_alerts_open", "Open alerts, by kind.", labels=["kind"])
    for kind in sorted({"no_success", "hung_run"} | set(open_alerts)):
        alerts.add_metric([kind], open_alerts.get(kind, 0))
    yield alerts

    # One series per scanner (a handful), so Prometheus can alert on staleness itself.
    rows = db.session.execute(select(MailAccount.id, MailAccount.name, MailAccount.last_success_at)
                              .where(MailAccount.enabled.is_(True)).order_by(MailAccount.id)).all()
    last_success = GaugeMetricFamily(
        "cm_scanner_last_success_timestamp_seconds",
        "Unix time of each enabled scanner's last successful run (0: never).", labels=["account_id", "scanner"])
    for account_id, name, last in rows:
        stamp = last.replace(tzinfo=UTC).timestamp() if last else 0.0
        last_success.add_metric([str(account_id), name], stamp)
    yield last_success

    # Hand-off outcomes: "refused: <why>" is grouped under "refused" to keep the label set small.
    outcomes = db.session.execute(select(AutologinEvent.outcome, func.count()).group_by(AutologinEvent.outcome)).all()
    counts: dict[str, int] = {"issued": 0, "redeemed": 0, "refused": 0}
    for outcome, n in outcomes:
        key = (outcome or "unknown").split(":", 1)[0].strip() or "unknown"
        counts[key] = counts.get(key, 0) + n
    handoffs = CounterMetricFamily("cm_handoffs_total", "Mailbox hand-offs to Roundcube, by outcome.",
                                   labels=["outcome"])
    for key in sorted(counts):
        handoffs.add_metric([key], counts[key])
    yield handoffs


def _queues() -> Iterator[Metric]:
    if current_app.config.get("QUEUE_MODE") == "inline":
        yield GaugeMetricFamily("cm_queue_inline", "1 when scans run in-process instead of on RQ workers.", value=1)
        return
    conn = redis_connection()
    try:
        counts = {name: registry_counts(conn, name) for name in queue_names()}
        workers = Worker.all(connection=conn)
    except redis.RedisError as exc:
        logger.warning("metrics: Redis unreachable: %s", exc.__class__.__name__)
        yield GaugeMetricFamily("cm_redis_up", REDIS_UP_HELP, value=0)
        return
    yield GaugeMetricFamily("cm_redis_up", REDIS_UP_HELP, value=1)
    jobs = GaugeMetricFamily("cm_queue_jobs", "Jobs per queue and registry.", labels=["queue", "registry"])
    failed = GaugeMetricFamily("cm_queue_failed_jobs", "Failed jobs waiting for a retry, per queue.", labels=["queue"])
    for queue, registries in counts.items():
        for registry, value in registries.items():
            jobs.add_metric([queue, registry], value)
        failed.add_metric([queue], registries["failed"])
    yield jobs
    yield failed
    yield GaugeMetricFamily("cm_workers", "RQ workers alive.", value=len(workers))


def _watch() -> Iterator[Metric]:
    """The watchers: connections, reconnects, events, scanners per watch state, delivery latency."""
    if current_app.config.get("QUEUE_MODE") == "inline":
        return
    conn = redis_connection()
    ids = list(db.session.scalars(select(MailAccount.id).where(MailAccount.enabled.is_(True))))
    try:
        watchers = telemetry.read_figures(conn)
        states = state.read_states(conn, ids)
        buckets, count, total = telemetry.read_latency(conn)
    except redis.RedisError:
        return  # cm_redis_up already says so
    yield GaugeMetricFamily("cm_watchers", "Watcher processes alive.", value=len(watchers))
    families = {
        "connections": GaugeMetricFamily("cm_watch_connections", "IMAP connections a watcher holds open.",
                                         labels=["watcher"]),
        "reconnects": CounterMetricFamily("cm_watch_reconnects", "Watch connections lost and opened again.",
                                          labels=["watcher"]),
        "events": CounterMetricFamily("cm_watch_events", "New-mail events the watcher heard.", labels=["watcher"]),
        "owed": GaugeMetricFamily("cm_watch_scans_owed", "Scans a watcher could not enqueue yet (Redis down).",
                                  labels=["watcher"]),
    }
    for watcher_id, figures in sorted(watchers.items()):
        for key, family in families.items():
            family.add_metric([watcher_id], figures.get(key, 0))
    yield from families.values()
    by_state = GaugeMetricFamily("cm_watch_scanners", "Enabled scanners by watch state (off: no watcher holds "
                                                      "it; the schedule polls it).", labels=["state"])
    counts: dict[str, int] = {name: 0 for name in state.STATES}
    for account_id in ids:
        record = states.get(account_id)
        counts[record.state if record else "off"] = counts.get(record.state if record else "off", 0) + 1
    for name in sorted(counts):
        by_state.add_metric([name], counts[name])
    yield by_state
    yield HistogramMetricFamily(
        "cm_watch_delivery_latency_seconds", "From the watcher hearing of new mail to the scan that stored it.",
        buckets=[(str(float(b)), n) for b, n in buckets] + [("+Inf", count)], sum_value=round(total, 3))
