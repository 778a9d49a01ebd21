"""The `bridge` blueprint object and what applies to all of its routes; the routes import it from here."""

from flask import Blueprint

bp = Blueprint("bridge", __name__)


@bp.record_once
def _provide_mailbox_buttons(state):
    """Let the top bar (app.navigation) ask the bridge for the current user's mailbox buttons."""
    from app.services.autologin import grants

    state.app.extensions["mailbox_buttons"] = grants.mailbox_buttons
