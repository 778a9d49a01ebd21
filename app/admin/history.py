"""Logs → Mails – download history: one row per scan run, filters, a chart, and Stop for running scans."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload, load_only

from app.admin.blueprint import bp
from app.admin.scanner_forms import RunFilterForm
from app.extensions import db
from app.models import MailAccount, ScanRun, User
from app.models.base import utcnow
from app.models.runs import RUN_STATUSES
from app.pagination import IdsFirstPagination, requested_page
from app.scanner.types import HELD_KINDS, HELD_LABELS
from app.services import accounts

RUNS_PER_PAGE = 50
CHART_RUNS = 100
CHART_HEIGHT = 120
BAR_WIDTH = 10
BAR_GAP = 3
CHART_MIN_WIDTH = 600
MIN_BAR_HEIGHT = 2
BAR_COLOURS = {"done": "#2b6cb0", "partial": "#b7791f", "failed": "#b00020", "stopped": "#718096",
               "running": "#38a169"}


def error_details(run: ScanRun) -> list[dict]:
    """The run's per-message errors as a list of {folder, uid, reason}; bad JSON reads as no detail."""
    try:
        details = json.loads(run.error_details or "[]")
    except (TypeError, ValueError):
        return []
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def held_counts(run: ScanRun) -> list[tuple[str, int]]:
    """The run's messages stored without their usual actions, as (label, count) for each kind it had."""
    return [(HELD_LABELS[kind], getattr(run, kind) or 0) for kind in HELD_KINDS if getattr(run, kind)]


def also_in(run: ScanRun, names: dict[int, str]) -> list[tuple[str, int]]:
    """The messages of the run already stored from other mailboxes, as (mailbox name, count), by name;
    bad JSON reads as none."""
    try:
        details = json.loads(run.also_in_details or "{}")
    except (TypeError, ValueError):
        return []
    if not isinstance(details, dict):
        return []
    out = [(names.get(int(k), "a deleted mailbox"), int(v)) for k, v in details.items()
           if str(k).isdigit() and isinstance(v, int)]
    return sorted(out)


def duration_text(run: ScanRun, now: datetime) -> str:
    """How long the run took (or has been running), in words."""
    seconds = run.duration_seconds
    if seconds is None:
        seconds = (now - run.started_at).total_seconds()
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _filtered(stmt, form: RunFilterForm):
    # Bounded: a forged huge id must not reach the database as an out-of-range integer (a 500).
    if form.mailbox.data and str(form.mailbox.data).isdigit() and int(form.mailbox.data) < 2**31:
        stmt = stmt.where(ScanRun.account_id == int(form.mailbox.data))
    if form.status.data in RUN_STATUSES:
        stmt = stmt.where(ScanRun.status == form.status.data)
    if form.since.data:
        stmt = stmt.where(ScanRun.started_at >= datetime.combine(form.since.data, time.min))
    if form.until.data:
        # "To" includes that whole day.
        stmt = stmt.where(ScanRun.started_at < datetime.combine(form.until.data + timedelta(days=1), time.min))
    return stmt


def _chart(form: RunFilterForm) -> dict | None:
    """Bars of messages downloaded per run, oldest left, for the last runs matching the filters."""
    rows = db.session.execute(_filtered(
        select(ScanRun.id, ScanRun.started_at, ScanRun.status, ScanRun.downloaded, ScanRun.created,
               ScanRun.ignored, ScanRun.errors), form)
        .order_by(ScanRun.started_at.desc(), ScanRun.id.desc()).limit(CHART_RUNS)).all()
    if not rows:
        return None
    rows.reverse()
    peak = max(max(r.downloaded for r in rows), 1)
    # Few runs get wider bars, so the chart never shrinks to a sliver; they are spread over the
    # whole width, so the date under the right end belongs to the last bar.
    bar_width = max(BAR_WIDTH, min(40, CHART_MIN_WIDTH // len(rows) - BAR_GAP))
    slot = max(bar_width + BAR_GAP, CHART_MIN_WIDTH / len(rows))
    bars = []
    for i, r in enumerate(rows):
        # A run that downloaded nothing (a failed login, say) still shows as a thin bar in its colour.
        height = max(round(CHART_HEIGHT * r.downloaded / peak, 1), MIN_BAR_HEIGHT)
        bars.append({
            "x": round(i * slot + (slot - bar_width) / 2, 1), "y": CHART_HEIGHT - height, "height": height,
            "colour": BAR_COLOURS.get(r.status, "#4a5568"),
            "title": f"{r.started_at:%Y-%m-%d %H:%M} – {r.status}: {r.downloaded} downloaded, "
                     f"{r.created} created, {r.ignored} ignored, {r.errors} errors",
        })
    return {"bars": bars, "width": round(len(rows) * slot), "height": CHART_HEIGHT,
            "bar_width": bar_width, "peak": peak, "first": rows[0].started_at, "last": rows[-1].started_at,
            "count": len(rows)}


def _load_runs(session, ids: list[int]):
    """The page's runs with their mailbox's name and who stopped them."""
    return session.execute(select(ScanRun).where(ScanRun.id.in_(ids)).options(
        joinedload(ScanRun.account).options(load_only(MailAccount.id, MailAccount.name)),
        joinedload(ScanRun.stopped_by).options(load_only(User.id, User.username, User.full_name)),
    )).unique().scalars()


@bp.route("/history", endpoint="history")
def history_list():
    """The download history, newest first, 50 runs a page."""
    form = RunFilterForm(formdata=request.args)
    mailboxes = db.session.execute(select(MailAccount.id, MailAccount.name).order_by(MailAccount.name)).all()
    form.mailbox.choices = [("", "All mailboxes")] + [(str(m.id), m.name) for m in mailboxes]
    if not form.validate():
        # A bad date or id in the address: show the errors and ignore that filter.
        for f in (form.since, form.until):
            if f.errors:
                f.data = None
    ids = _filtered(select(ScanRun.id), form).order_by(ScanRun.started_at.desc(), ScanRun.id.desc())
    page = IdsFirstPagination(select=ids, load=_load_runs, session=db.session(),
                              page=requested_page(), per_page=RUNS_PER_PAGE,
                              max_per_page=RUNS_PER_PAGE, error_out=False, count=True)
    mailbox = form.mailbox.data if str(form.mailbox.data or "").isdigit() else None
    filters = {k: v for k, v in (("mailbox", mailbox), ("status", form.status.data or None),
                                 ("since", form.since.data), ("until", form.until.data)) if v}
    return render_template("admin/history.html", form=form, page=page, runs=page.items, filters=filters,
                           chart=_chart(form), error_details=error_details, duration_text=duration_text,
                           held_counts=held_counts, also_in=also_in,
                           mailbox_names={m.id: m.name for m in mailboxes}, now=utcnow())


@bp.route("/history/<int:run_id>/stop", methods=["POST"])
def history_stop(run_id: int):
    """Ask a running scan to stop; who asked is recorded on the run."""
    run = db.session.get(ScanRun, run_id)
    if run is None:
        abort(404)
    from app.services import scans

    if run.status != "running":
        flash("This scan has already ended; there is nothing to stop.", "info")
    else:
        try:
            scans.request_stop(run.id, current_user.id)
        except scans.ScanError as exc:  # it ended between the page and the click
            flash(str(exc), "info")
        else:
            flash("Stop requested: the scan stops after the batch it is working on.", "success")
    # Back to the same filtered page, but only ever to a page of this site.
    return redirect(accounts.safe_next(request.form.get("next"), url_for("admin.history")))
