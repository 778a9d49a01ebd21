"""Settings → Users: list, create, edit, disable and enable, reset a password, make or unmake an administrator.

Every change is made and audited by app.services.user_admin, which also refuses to let an
administrator disable or demote themself or the last active administrator.
"""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user

from app.admin.blueprint import bp
from app.admin.users_forms import NewUserForm, PasswordForm, ProfileForm
from app.extensions import db
from app.services import user_admin
from app.services.accounts import AccountError

MAX_ID = 2**31 - 1


def _user_or_404(user_id: int):
    if not 0 < user_id <= MAX_ID:
        abort(404)
    try:
        return user_admin.get_user(user_id)
    except user_admin.UserNotFound:
        abort(404)


def _actor():
    return current_user._get_current_object()


def _show_once(user, password: str, created: bool):
    """The page that shows a generated password; never cached, never kept in the session."""
    response = make_response(render_template("admin/users_password_shown.html", person=user, password=password,
                                              created=created))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/users", endpoint="users")
def user_list():
    """Every user with their role and state, and the actions on them."""
    return render_template("admin/users.html", users=user_admin.list_users(), me=current_user.id)


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    """Create a user; a generated password is shown once on the next page."""
    form = NewUserForm()
    if form.validate_on_submit():
        new = user_admin.NewUser(username=form.username.data or "", full_name=form.full_name.data or "",
                                 email=form.email.data, is_admin=bool(form.is_admin.data),
                                 password=form.password.data or None)
        try:
            user, generated = user_admin.create_user(new)
        except AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            if generated:
                return _show_once(user, generated, created=True)
            flash(f"User {user.username} created.", "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/users_form.html", form=form, person=None)


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
def user_edit(user_id: int):
    """Change a user's full name and e-mail address."""
    user = _user_or_404(user_id)
    form = ProfileForm(obj=user)
    if form.validate_on_submit():
        try:
            changes = user_admin.update_profile(user, user_admin.Profile(form.full_name.data, form.email.data))
        except AccountError as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(f"User {user.username} saved." if changes else f"Nothing changed for {user.username}.",
                  "success" if changes else "info")
            return redirect(url_for("admin.users"))
    return render_template("admin/users_form.html", form=form, person=user)


def _apply(change, done: str, unchanged: str):
    try:
        changed = change()
    except AccountError as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(done if changed else unchanged, "success" if changed else "info")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/disable", methods=["POST"])
def user_disable(user_id: int):
    """Disable a user: they cannot log in, their sessions end, their mailbox buttons go."""
    user = _user_or_404(user_id)
    return _apply(lambda: user_admin.set_active(user, False, _actor()),
                  f"{user.username} is disabled; every session of theirs has ended.",
                  f"{user.username} was already disabled.")


@bp.route("/users/<int:user_id>/enable", methods=["POST"])
def user_enable(user_id: int):
    """Enable a disabled user again."""
    user = _user_or_404(user_id)
    return _apply(lambda: user_admin.set_active(user, True, _actor()),
                  f"{user.username} is enabled and may log in again.", f"{user.username} was already enabled.")


@bp.route("/users/<int:user_id>/promote", methods=["POST"])
def user_promote(user_id: int):
    """Make a user an administrator."""
    user = _user_or_404(user_id)
    return _apply(lambda: user_admin.set_admin(user, True, _actor()),
                  f"{user.username} is now an administrator.", f"{user.username} already was an administrator.")


@bp.route("/users/<int:user_id>/demote", methods=["POST"])
def user_demote(user_id: int):
    """Make an administrator an ordinary user."""
    user = _user_or_404(user_id)
    return _apply(lambda: user_admin.set_admin(user, False, _actor()),
                  f"{user.username} is now an ordinary user.", f"{user.username} already was an ordinary user.")


@bp.route("/users/<int:user_id>/password", methods=["GET", "POST"])
def user_password(user_id: int):
    """Reset a user's password (typed twice, or generated and shown once); their sessions end."""
    user = _user_or_404(user_id)
    form = PasswordForm()
    if form.validate_on_submit():
        generate = request.form.get("generate") == "y"
        typed = form.password.data or ""
        if not generate and not typed:
            form.password.errors = ["Type the new password twice, or press Generate a password."]
        elif not generate and typed != (form.confirm.data or ""):
            form.confirm.errors = ["The two passwords differ; type the same password twice."]
        else:
            try:
                generated = user_admin.reset_password(user, None if generate else typed)
            except AccountError as exc:
                db.session.rollback()
                form.password.errors = [str(exc)]
            else:
                if generated:
                    return _show_once(user, generated, created=False)
                flash(f"Password of {user.username} changed; every session of theirs has ended.", "success")
                return redirect(url_for("admin.users"))
    return render_template("admin/users_password.html", form=form, person=user)
