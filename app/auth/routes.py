"""Login and logout."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app.auth.blueprint import bp
from app.auth.forms import LoginForm
from app.extensions import login_manager
from app.services import accounts


@login_manager.user_loader
def load_user(session_id: str):
    """The user of a session or remember-me cookie, only while that session has not been ended."""
    return accounts.user_for_session(session_id)


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in; failures are throttled per (account, address) pair (app/services/login_throttle.py)."""
    if current_user.is_authenticated:
        return redirect(url_for("desk.index"))
    form = LoginForm()
    if form.validate_on_submit():
        result = accounts.authenticate(form.username.data, form.password.data,
                                       client=request.remote_addr or "?")
        if result.user is not None:
            login_user(result.user, remember=form.remember.data)
            return redirect(accounts.safe_next(request.args.get("next"), url_for("desk.index")))
        flash(result.error, "error")
        return render_template("auth/login.html", form=form), 429 if result.locked else 200
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out everywhere: every session and remember-me cookie of the user ends (POST, not an image tag)."""
    accounts.end_sessions(current_user._get_current_object())
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
