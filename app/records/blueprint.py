"""The `records` blueprint object and what applies to all of its routes; the routes import it from here."""

from flask import Blueprint
from flask_login import login_required

bp = Blueprint("records", __name__)


@bp.before_request
@login_required
def require_login():
    """Every record page needs a logged-in user."""
    return None
