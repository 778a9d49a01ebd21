"""``flask scanners run ID [--json]``: scan a mailbox now, in the foreground.

Added to the scanner-admin's ``scanners`` group through ``add_scan_commands``.
"""

from __future__ import annotations

import json

import click

from app.cli.params import ROW_ID
from app.extensions import db
from app.models import MailAccount
from app.scanner.types import HELD_KINDS, held_summary

COUNTERS = ("downloaded", "created", "also_in", "bound", "tickets_created", "tickets_reopened", "ignored", "duplicates",
            *HELD_KINDS)


def run_result(run) -> dict:
    """The JSON object ``scanners run --json`` prints for a finished run."""
    try:
        details = json.loads(run.error_details or "[]")
    except ValueError:
        details = [{"folder": None, "uid": None, "reason": str(run.error_details)}]
    out = {"status": run.status, "run_id": run.id, "account_id": run.account_id}
    out.update({name: getattr(run, name) or 0 for name in COUNTERS})
    out["errors"] = run.errors or 0
    out["error_details"] = details
    out["message"] = run.message
    out["duration_s"] = round(run.duration_seconds, 3) if run.duration_seconds is not None else None
    return out


def add_scan_commands(group: click.Group) -> None:
    """Attach the scan engine's commands to the ``scanners`` group."""

    @group.command("run")
    @click.argument("account_id", type=ROW_ID)
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object (for scripts).")
    def run(account_id: int, as_json: bool) -> None:
        """Scan mailbox ACCOUNT_ID now, in this process; exit code 1 when the run failed."""
        from app.scanning.errors import ScanAlreadyRunning
        from app.scanning.run import run_scan
        from app.scanning.runtime import scan_runtime

        if db.session.get(MailAccount, account_id) is None:
            raise click.ClickException(f"There is no scanner with id {account_id} "
                                       "(see `flask --app wsgi scanners list`).")
        try:
            with scan_runtime():  # this process does nothing else meanwhile
                result = run_result(run_scan(account_id, trigger="cli"))
        except ScanAlreadyRunning as busy:
            result = {"status": "already_running", "run_id": busy.run_id, "errors": 0, "error_details": [],
                      "message": str(busy), **{name: 0 for name in COUNTERS}}
        if as_json:
            click.echo(json.dumps(result, ensure_ascii=False))
        else:
            click.echo(f"Run {result['run_id']}: {result['status']}")
            click.echo(f"  downloaded {result['downloaded']}, stored {result['created']}, bound {result['bound']}, "
                       f"tickets created {result['tickets_created']}, reopened {result['tickets_reopened']}, "
                       f"ignored {result['ignored']}, already stored {result['duplicates']}, "
                       f"errors {result['errors']}")
            held = held_summary(result)
            if held:
                click.echo(f"  stored without opening or reopening tickets: {held}")
            for item in result["error_details"][:50]:
                click.echo(f"  error: {item.get('folder')} UID {item.get('uid')}: {item.get('reason')}")
            if result.get("message"):
                click.echo(f"  {result['message']}")
        if result["status"] in ("failed", "already_running"):
            raise SystemExit(1)
