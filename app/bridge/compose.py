"""Hand-offs that open more than the inbox: "Write e-mail" on a record, "Open in webmail" on an e-mail.

Both check access to what they open, build a target (app/services/autologin/targets.py) and mint the
same one-time token as the mailbox buttons, with the target kept beside it on the server: the page
that follows posts only the token.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user, login_required

from app.bridge.blueprint import bp
from app.bridge.pages import handoff_page, refused_page
from app.services.autologin import handoff as mailbox_handoff
from app.services.autologin import webmail, write
from app.services.email_access import get_visible_email_or_404
from app.services.validation import db_id


@bp.route("/write/<kind>/<int:record_id>", methods=["POST"])
@login_required
def write_email(kind: str, record_id: int):
    """Open Roundcube's compose window to the record's address, from the mailbox the user picked."""
    if kind not in write.KINDS or db_id(record_id) is None:
        abort(404)
    back = url_for(f"records.{kind}_detail", **{_ID_ARG[kind]: record_id})
    mailbox = db_id(request.form.get("mailbox"))
    try:
        target = write.compose_target(current_user, kind, record_id, request.form.get("to"))
    except LookupError:
        abort(404)
    except write.WriteRefused as exc:
        flash(str(exc), "error")
        return redirect(back, 303)
    if mailbox is None:
        flash("Pick the mailbox to write from and try again.", "error")
        return redirect(back, 303)
    try:
        token = mailbox_handoff.open_mailbox(current_user, mailbox, request.remote_addr, target)
    except mailbox_handoff.AutologinRefused as exc:
        return refused_page(exc)
    return handoff_page(token)


@bp.route("/webmail/<int:email_id>", methods=["POST"])
@login_required
def open_in_webmail(email_id: int):
    """Open this very e-mail in Roundcube, once its mail server confirms the message is still there."""
    if db_id(email_id) is None:
        abort(404)
    email = get_visible_email_or_404(email_id, current_user)
    try:
        mailbox_handoff.count_lookup(current_user, request.remote_addr)
    except mailbox_handoff.AutologinRefused as exc:
        return refused_page(exc)
    try:
        account_id, target = webmail.show_target(current_user, email, db_id(request.form.get("mailbox")))
    except webmail.WebmailRefused as exc:
        flash(str(exc), "error")
        return redirect(url_for("records.email_detail", email_id=email.id), 303)
    try:
        token = mailbox_handoff.open_mailbox(current_user, account_id, request.remote_addr, target)
    except mailbox_handoff.AutologinRefused as exc:
        return refused_page(exc)
    return handoff_page(token)


# The URL argument of each record page.
_ID_ARG = {"contact": "contact_id", "organization": "org_id", "lead": "lead_id", "ticket": "ticket_id"}
