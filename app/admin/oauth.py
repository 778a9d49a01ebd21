"""Mail tools → Mail scanner → *Connect account*: sign a scanner's mailbox in at its OAuth 2.0 provider.

The button (POST, CSRF-protected) sends the administrator's browser to the
provider; the provider sends it back to the callback, which hands the answer to
app.services.oauth and says in plain words how it went.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user

from app.admin.blueprint import bp
from app.services import oauth
from app.services.scanners import ScannerNotFound


@bp.route("/scanners/<int:account_id>/oauth/connect", methods=["POST"], endpoint="oauth_connect")
def oauth_connect(account_id: int):
    """Start *Connect account*: redirect to the provider's sign-in page."""
    try:
        url = oauth.start_connect(account_id, current_user.id)
    except ScannerNotFound:
        abort(404)
    except oauth.OAuthError as exc:
        flash(f"Connect account could not start: {exc}", "error")
        return redirect(url_for("admin.scanners"))
    return redirect(url)


@bp.route("/oauth/callback", endpoint="oauth_callback")
def oauth_callback():
    """Where the provider sends the browser back: store the tokens, or say what went wrong."""
    try:
        account = oauth.finish_connect(request.args, current_user.id)
    except oauth.OAuthError as exc:
        flash(str(exc), "error")
        return redirect(url_for("admin.scanners"))
    except ScannerNotFound:
        flash("The scanner being connected no longer exists.", "error")
        return redirect(url_for("admin.scanners"))
    flash(f"Account {account.login} connected: scanner {account.name} now logs in with OAuth 2.0 (XOAUTH2).",
          "success")
    return redirect(url_for("admin.scanners", _anchor=f"scanner-{account.id}"))
