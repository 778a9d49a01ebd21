"""Bridge routes: the mailbox button's target, the plugin's redeem call, and the unread poll."""

from __future__ import annotations

import logging

from flask import current_app, jsonify, make_response, redirect, render_template, request
from flask_login import current_user, login_required

from app.bridge.blueprint import bp
from app.bridge.pages import BIND_PATH, HANDOFF_COOKIE, handoff_page, private, refused_page, roundcube_url
from app.extensions import csrf
from app.services.autologin import handoff as mailbox_handoff
from app.services.autologin import unread as unread_counts
from roundcube_bridge import tokens

log = logging.getLogger(__name__)


@bp.route("/open/<int:account_id>", methods=["POST"])
@login_required
def open_mailbox(account_id: int):
    """Check the grant, mint a one-time token, and hand it to Roundcube through this browser (pages.handoff_page)."""
    try:
        token = mailbox_handoff.open_mailbox(current_user, account_id, request.remote_addr)
    except mailbox_handoff.AutologinRefused as exc:
        return refused_page(exc)
    return handoff_page(token)


@bp.route("/bind")
@login_required
def bind():
    """The browser back from Roundcube: bind the token of this browser's cookie to the plugin's browser key."""
    token = request.cookies.get(HANDOFF_COOKIE)
    try:
        confirmation = mailbox_handoff.bind(current_user, token, request.args.get("browser"), request.remote_addr)
    except mailbox_handoff.AutologinRefused as exc:
        response = make_response(render_template("error.html", code=exc.status, message=exc.message))
        status = exc.status
    else:
        response, status = redirect(roundcube_url(_autologin_bound=confirmation)), 303
    response.delete_cookie(HANDOFF_COOKIE, path=BIND_PATH)
    return private(response, status)


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

    def text(name: str) -> str | None:
        return body.get(name) if isinstance(body.get(name), str) else None

    # The browser's address as Roundcube saw it: where the hand-off came from, for the log.
    address = text("client") or client
    try:
        handoff = mailbox_handoff.redeem(text("token"), address, browser_key=text("browser"),
                                         confirmation=text("confirmation"))
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
