"""Logs → Audit: who changed which server, scanner, grant or configuration, newest first."""

from __future__ import annotations

from flask import current_app, render_template, request
from sqlalchemy import func, select

from app.admin.blueprint import bp
from app.extensions import db
from app.models import AuditEntry, User
from app.pagination import requested_page


@bp.route("/audit", endpoint="audit")
def audit_log():
    """Audit entries, paginated, optionally filtered by an action prefix such as "mail_server"."""
    prefix = (request.args.get("action") or "").strip()[:60]
    query = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
    if prefix:
        query = query.where(AuditEntry.action.startswith(prefix, autoescape=True))
    page = db.paginate(query, page=requested_page(), per_page=current_app.config.get("PER_PAGE", 50),
                       error_out=False)
    # One query for the page's users instead of one per row.
    user_ids = {e.user_id for e in page.items if e.user_id}
    users = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))} if user_ids else {}
    # The families of actions ("mail_server", "scanner", ...) for the filter.
    family = func.substr(AuditEntry.action, 1, 60)
    actions = sorted({a.split(".", 1)[0] for a in db.session.scalars(select(family).distinct().limit(500)) if a})
    return render_template("admin/audit.html", page=page, users=users, prefix=prefix, actions=actions,
                           handoffs_url="admin.handoffs" in current_app.view_functions)
