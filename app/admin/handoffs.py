"""Logs → Mailbox hand-offs: who opened which mailbox in Roundcube, when, from where."""

from __future__ import annotations

from flask import current_app, render_template
from sqlalchemy import select

from app.admin.blueprint import bp
from app.extensions import db
from app.models import MailAccount, User
from app.pagination import requested_page
from app.services.autologin import handoff


@bp.route("/handoffs", endpoint="handoffs")
def handoffs():
    """The hand-off log, newest first."""
    page = handoff.events_page(requested_page(), current_app.config["PER_PAGE"])
    user_ids = {e.user_id for e in page.items if e.user_id}
    account_ids = {e.account_id for e in page.items if e.account_id}
    # Two lookups for the whole page rather than two per row.
    users = dict(db.session.execute(select(User.id, User.username).where(User.id.in_(user_ids))).all()) \
        if user_ids else {}
    accounts = dict(db.session.execute(select(MailAccount.id, MailAccount.name)
                                       .where(MailAccount.id.in_(account_ids))).all()) if account_ids else {}
    return render_template("admin/handoffs.html", page=page, users=users, accounts=accounts)
