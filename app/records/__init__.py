"""Contacts, organizations, leads, tickets and e-mails."""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("records", __name__)


@bp.before_request
@login_required
def require_login():
    """Every record page needs a logged-in user."""
    return None


from app.records import contacts, emails, guards, leads, organizations, tickets, users  # noqa: E402,F401
