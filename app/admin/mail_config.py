"""Mail tools → Mail configuration: scanning settings and the ignore filters."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from app.admin.blueprint import bp
from app.admin.mail_config_forms import MATCH_CHOICES, FilterForm, MailSettingsForm
from app.services import mail_settings
from app.services.mail_settings import (
    FIELD_LABELS,
    POLICY_LABELS,
    STOP_LABELS,
    FilterNotFound,
    SettingsError,
)


def _apply_errors(form, exc: SettingsError) -> None:
    """Show each service message next to its field; the rest as a flash."""
    for name, message in exc.errors.items():
        if name in form:
            form[name].errors = list(form[name].errors) + [message]
        else:
            flash(message, "error")


def _filter_form(form: FilterForm | None = None) -> FilterForm:
    form = form or FilterForm(formdata=None)
    form.account_id.choices = [SelectChoice("", "All mailboxes")] + [
        SelectChoice(str(i), f"Mailbox {name}") for i, name in mail_settings.mailbox_choices()]
    return form


def _settings_form(formdata=True) -> MailSettingsForm:
    settings = mail_settings.get_settings()
    if formdata:
        return MailSettingsForm(obj=settings)
    return MailSettingsForm(formdata=None, obj=settings)


def _render(settings_form: MailSettingsForm, filter_form: FilterForm, status: int = 200):
    filters = mail_settings.list_filters()
    mailboxes = dict(mail_settings.mailbox_choices())
    return render_template("admin/mail_config.html", form=settings_form, filter_form=filter_form,
                           filters=filters, mailboxes=mailboxes, field_labels=FIELD_LABELS,
                           match_labels=MATCH_CHOICES, stop_labels=STOP_LABELS,
                           policy_labels=POLICY_LABELS), status


@bp.route("/mail-config", methods=["GET", "POST"], endpoint="mail_config")
def mail_config():
    """The settings form, and the list of ignore filters with a form to add one."""
    form = _settings_form()
    if form.validate_on_submit():
        try:
            mail_settings.update_settings(form.values())
        except SettingsError as exc:
            _apply_errors(form, exc)
        else:
            flash("Mail configuration saved.", "success")
            return redirect(url_for("admin.mail_config"))
    return _render(form, _filter_form())


@bp.route("/mail-config/filters", methods=["POST"])
def mail_filter_new():
    """Add an ignore filter (global or for one mailbox)."""
    form = _filter_form(FilterForm())
    if form.validate_on_submit():
        try:
            mail_settings.create_filter(form.values())
        except SettingsError as exc:
            _apply_errors(form, exc)
        else:
            flash("Filter added.", "success")
            return redirect(url_for("admin.mail_config") + "#filters")
    return _render(_settings_form(formdata=False), form)


def _filter_or_404(filter_id: int):
    try:
        return mail_settings.get_filter(filter_id)
    except FilterNotFound:
        abort(404)


@bp.route("/mail-config/filters/<int:filter_id>/edit", methods=["GET", "POST"])
def mail_filter_edit(filter_id: int):
    """Change an ignore filter."""
    row = _filter_or_404(filter_id)
    form = _filter_form(FilterForm(obj=row))
    if request.method == "GET":
        form.account_id.data = str(row.account_id or "")
    if form.validate_on_submit():
        try:
            mail_settings.update_filter(row.id, form.values())
        except SettingsError as exc:
            _apply_errors(form, exc)
        else:
            flash("Filter saved.", "success")
            return redirect(url_for("admin.mail_config") + "#filters")
    return render_template("admin/mail_config_filter.html", form=form, row=row)


@bp.route("/mail-config/filters/<int:filter_id>/delete", methods=["POST"])
def mail_filter_delete(filter_id: int):
    """Delete an ignore filter (CSRF checked before we get here)."""
    row = _filter_or_404(filter_id)
    mail_settings.delete_filter(row.id)
    flash("Filter deleted.", "success")
    return redirect(url_for("admin.mail_config") + "#filters")


@bp.route("/mail-config/filters/<int:filter_id>/toggle", methods=["POST"])
def mail_filter_toggle(filter_id: int):
    """Switch an ignore filter on or off."""
    row = _filter_or_404(filter_id)
    mail_settings.set_filter_enabled(row.id, not row.enabled)
    flash("Filter enabled." if row.enabled else "Filter disabled.", "success")
    return redirect(url_for("admin.mail_config") + "#filters")
