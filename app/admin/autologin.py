"""Mail tools → Mail autologin: for each mailbox, the users who may open it in Roundcube."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget

from app.admin.blueprint import bp
from app.extensions import db
from app.models import MailAccount, User
from app.services.autologin import grants


class GrantForm(FlaskForm):
    """The users allowed to open one mailbox; none checked means nobody."""

    user_ids = SelectMultipleField("Users who may open this mailbox", coerce=int,
                                   widget=ListWidget(prefix_label=False), option_widget=CheckboxInput())


def _user_choices() -> list[tuple[int, str]]:
    rows = db.session.execute(select(User.id, User.username, User.full_name)
                              .where(User.active.is_(True)).order_by(User.username)).all()
    return [(r.id, f"{r.full_name} ({r.username})" if r.full_name else r.username) for r in rows]


@bp.route("/autologin", endpoint="autologin")
def autologin_list():
    """Every mailbox with a checkbox per user; each mailbox is saved on its own."""
    accounts = db.session.scalars(select(MailAccount).order_by(MailAccount.name, MailAccount.id)).all()
    choices = _user_choices()
    granted = grants.grants_by_account()
    forms = []
    for account in accounts:
        form = GrantForm(formdata=None, prefix=f"m{account.id}", data={"user_ids": sorted(granted.get(account.id, ()))})
        form.user_ids.choices = choices
        forms.append((account, form))
    return render_template("admin/autologin.html", forms=forms, has_users=bool(choices))


@bp.route("/autologin/<int:account_id>", methods=["POST"], endpoint="autologin_save")
def autologin_save(account_id: int):
    """Save who may open mailbox ``account_id``."""
    account = db.session.get(MailAccount, account_id)
    if account is None:
        abort(404)
    form = GrantForm(prefix=f"m{account_id}")
    form.user_ids.choices = _user_choices()
    if not form.validate_on_submit():
        flash("The grants of " + account.name + " were not saved: "
              + "; ".join(form.user_ids.errors or ["the form expired, reload the page and try again"]) + ".",
              "error")
        return redirect(url_for("admin.autologin"))
    try:
        added, removed = grants.set_grants(account_id, form.user_ids.data or [])
    except (LookupError, ValueError) as exc:
        flash(f"The grants of {account.name} were not saved: {exc}", "error")
        return redirect(url_for("admin.autologin"))
    if not (added or removed):
        flash(f"Nothing changed for {account.name}.", "info")
    elif not form.user_ids.data:
        flash(f"Nobody may open {account.name} now.", "success")
    else:
        flash(f"Saved who may open {account.name}.", "success")
    return redirect(url_for("admin.autologin") + f"#mailbox-{account_id}")
