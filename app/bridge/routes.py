"""Bridge routes: the mailbox button's target, the plugin's redeem call, and the unread poll."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, redirect, render_template, request
from flask_login import current_user, login_required

from app.bridge.blueprint import bp
from app.extensions import csrf
from app.services.autologin import handoff as mailbox_handoff
from app.services.autologin import unread as unread_counts
from roundcube_bridge import tokens

log = logging.getLogger(__name__)


def _roundcube_url(token: str) -> str:
    base = current_app.config["ROUNDCUBE_URL"]
    return f"{base}{'&' if '?' in base else '?'}_autologin={token}"


@bp.route("/open/<int:account_id>", methods=["POST"])
@login_required
def open_mailbox(account_id: int):
    """Check the grant, mint a one-time token and send the browser to Roundcube with it."""
    try:
        token = mailbox_handoff.open_mailbox(current_user, account_id, request.remote_addr)
    except mailbox_handoff.AutologinRefused as exc:
        return render_template("error.html", code=403, message=exc.message), 403
    # The token travels in the URL because Roundcube is another site and a GET is what
    # a new tab can open. That is acceptable for this value only: it is not the mailbox
    # password, it opens nothing once redeemed (the plugin spends it on the very first
    # request), it dies after AUTOLOGIN_TOKEN_TTL seconds anyway, and it is useless
    # without the shared secret that only Roundcube's server holds. The password itself
    # goes from Flask to Roundcube server-to-server and never through the browser.
    response = redirect(_roundcube_url(token), code=303)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.route("/redeem", methods=["POST"])
@csrf.exempt  # server-to-server: the shared secret, not a browser session, authenticates the caller
def redeem():
    """Spend a token for the Roundcube plugin and answer with the mailbox's login settings (JSON)."""
    client = request.remote_addr
    if not tokens.secret_matches(request.headers.get(tokens.SECRET_HEADER),
                                 current_app.config.get("BRIDGE_SECRET")):
        mailbox_handoff.record_refusal("bad secret", address=client)
        return _no_store(jsonify(ok=False, reason="bad_secret",
                                 message="The bridge secret is missing or wrong."), 401)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        body = {}
    token = body.get("token") if isinstance(body.get("token"), str) else None
    # The browser's address as Roundcube saw it: where the hand-off came from, for the log.
    address = body.get("client") if isinstance(body.get("client"), str) else client
    try:
        handoff = mailbox_handoff.redeem(token, address)
    except mailbox_handoff.AutologinRefused as exc:
        return _no_store(jsonify(ok=False, reason=exc.reason, message=exc.message), exc.status)
    return _no_store(jsonify(handoff.as_json()), 200)


@bp.route("/unread")
@login_required
def unread():
    """The cached unread counts of the user's mailboxes, for the top bar's poll (app/static/unread.js)."""
    return _no_store(jsonify(unread_counts.unread_for(current_user)), 200)


def _no_store(response, status: int):
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response
