"""Mail tools → Watch: how each scanner hears of new mail, and the watchers."""

from __future__ import annotations

from flask import render_template

from app.admin.blueprint import bp
from app.services import watch_status


@bp.route("/watch", endpoint="watch")
def watch_page():
    """Each scanner's watch state (IDLE, NOTIFY, polling, reconnecting and why, or off) and backlog."""
    return render_template("admin/watch.html", view=watch_status.overview())
