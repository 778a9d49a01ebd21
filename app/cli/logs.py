"""``flask logs …``: read the download history from the command line."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.cli.params import ROW_ID
from app.extensions import db
from app.models import ScanRun
from app.models.runs import RUN_STATUSES
from app.scanner.types import HELD_KINDS

logs_cli = AppGroup("logs", help="Read the download history of the mail scanners.")

COUNTERS = ("downloaded", "created", "also_in", "bound", "tickets_created", "tickets_reopened", "ignored", "duplicates",
            *HELD_KINDS, "errors")


def _details(run: ScanRun) -> list:
    try:
        details = json.loads(run.error_details or "[]")
    except (TypeError, ValueError):
        # Never lose the text: hand it over as one reason.
        return [{"folder": None, "uid": None, "reason": str(run.error_details)}]
    return details if isinstance(details, list) else [details]


def _iso(value) -> str | None:
    return value.isoformat(timespec="seconds") + "Z" if value else None


def run_as_dict(run: ScanRun) -> dict:
    """One run with every counter, as printed by ``logs list --json``."""
    data = {
        "id": run.id,
        "mailbox_id": run.account_id,
        "mailbox": run.account.name if run.account else None,
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_seconds": run.duration_seconds,
        "status": run.status,
        "trigger": run.trigger,
    }
    data.update({name: getattr(run, name) for name in COUNTERS})
    data["error_details"] = _details(run)
    data["message"] = run.message
    data["stop_requested"] = bool(run.stop_requested)
    data["stopped_by"] = run.stopped_by.username if run.stopped_by else None
    return data


@logs_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs with all counters.")
@click.option("--mailbox", "mailbox_id", type=ROW_ID, default=None, help="Only this scanner's runs (its id).")
@click.option("--status", type=click.Choice(RUN_STATUSES), default=None, help="Only runs with this status.")
@click.option("--limit", type=click.IntRange(1, 100000), default=50, show_default=True,
              help="How many runs, newest first.")
def list_runs(as_json, mailbox_id, status, limit):
    """The download history, newest first."""
    stmt = select(ScanRun).options(joinedload(ScanRun.account), joinedload(ScanRun.stopped_by))
    if mailbox_id is not None:
        stmt = stmt.where(ScanRun.account_id == mailbox_id)
    if status:
        stmt = stmt.where(ScanRun.status == status)
    runs = list(db.session.scalars(stmt.order_by(ScanRun.started_at.desc(), ScanRun.id.desc()).limit(limit)))
    if as_json:
        click.echo(json.dumps([run_as_dict(r) for r in runs], indent=2, ensure_ascii=False))
        return
    if not runs:
        click.echo("No scan run yet.")
        return
    click.echo("id\tmailbox\tstarted\tstatus\tdownloaded\tcreated\tbound\ttickets+\treopened\tignored\terrors\tmessage")
    for r in runs:
        click.echo("\t".join(str(v) for v in (
            r.id, r.account.name if r.account else "?", f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.status,
            r.downloaded, r.created, r.bound, r.tickets_created, r.tickets_reopened, r.ignored, r.errors,
            r.message or "")))
