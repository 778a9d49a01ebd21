"""The `admin` blueprint object and what applies to all of its routes; the routes import it from here."""

from flask import Blueprint, abort
from flask_login import current_user

from app.extensions import login_manager

bp = Blueprint("admin", __name__)


@bp.before_request
def require_admin():
    """One check for the whole blueprint, so a new admin route cannot forget it."""
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if not current_user.is_admin:
        abort(403)
