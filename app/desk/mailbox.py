"""Virtual desk → Mailbox: the user's corporate mailboxes, each opening Roundcube."""

from __future__ import annotations

from flask import render_template
from flask_login import current_user, login_required

from app.desk.blueprint import bp
from app.services.autologin import grants


@bp.route("/mailbox", endpoint="mailbox")
@login_required
def mailbox():
    """The mailboxes the user may open, with an Open button each."""
    return render_template("desk/mailbox.html", mailboxes=grants.mailbox_buttons(current_user))
