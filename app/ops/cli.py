"""``flask --app wsgi ops ...``: the health check and the alert check from a shell or cron."""

from __future__ import annotations

import json

import click
from flask.cli import AppGroup

ops_cli = AppGroup("ops", help="Operations: health check, alert check.")


@ops_cli.command("health")
def health_command():
    """Print the /healthz answer as JSON; exit status 1 when something is down."""
    from flask import current_app

    with current_app.test_request_context("/healthz"):
        from app.ops.routes import healthz

        response = healthz()
    click.echo(json.dumps(response.get_json()))
    raise SystemExit(0 if response.status_code == 200 else 1)


@ops_cli.command("check-alerts")
def check_alerts_command():
    """Open and close alerts now (the worker does this on its schedule) and print what changed."""
    from app.services.alerts import check_alerts, open_alerts

    changes = check_alerts()
    click.echo(json.dumps({
        "opened": [a.message for a in changes.opened],
        "closed": [a.message for a in changes.closed],
        "mailed": changes.mailed,
        "open": [{"kind": a.kind, "account_id": a.account_id, "message": a.message} for a in open_alerts()],
    }, indent=2))
