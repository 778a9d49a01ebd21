"""Mail tools → Mail servers: list, add, edit, delete, Test connection."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from wtforms import SelectChoice

from app.admin.blueprint import bp
from app.admin.servers_forms import ServerForm, TestConnectionForm
from app.services import mail_servers
from app.services.mail_servers import AUTH_LABELS, OAUTH_PROVIDERS, SECURITY_LABELS, ServerError, ServerNotFound


def _server_or_404(server_id: int):
    try:
        return mail_servers.get_server(server_id)
    except ServerNotFound:
        abort(404)


def _apply_errors(form, exc: ServerError) -> None:
    """Show each service message next to its field; the rest as a flash."""
    for name, message in exc.errors.items():
        if name in form:
            form[name].errors = list(form[name].errors) + [message]
        else:
            flash(message, "error")


def _labels() -> dict:
    return {"security_labels": SECURITY_LABELS, "auth_labels": AUTH_LABELS, "providers": OAUTH_PROVIDERS}


def _test_form(server, form: TestConnectionForm | None = None) -> TestConnectionForm:
    form = form or TestConnectionForm(formdata=None)
    scanners_here = mail_servers.scanners_using(server)
    if server.auth_method == "oauth2":
        # No password exists on an OAuth 2.0 server: a test uses a connected scanner's authorization.
        form.account_id.label.text = "Authorization"
        form.account_id.choices = [
            SelectChoice(str(a.id), f"Scanner \"{a.name}\" ({a.login}), with its authorization")
            for a in scanners_here if a.oauth_refresh_token_enc]
        return form
    form.account_id.choices = [SelectChoice("", "The login and password typed below")] + [
        SelectChoice(str(a.id), f"Scanner \"{a.name}\" ({a.login}), with its stored credentials")
        for a in scanners_here]
    return form


@bp.route("/servers", endpoint="servers")
def server_list():
    """Every mail server, with the scanners that use it."""
    return render_template("admin/servers.html", servers=mail_servers.list_servers(), **_labels())


@bp.route("/servers/new", methods=["GET", "POST"])
def server_new():
    """Add a mail server."""
    form = ServerForm()
    if form.validate_on_submit():
        try:
            server = mail_servers.create_server(form.values())
        except ServerError as exc:
            _apply_errors(form, exc)
        else:
            flash(f"Mail server \"{server.name}\" added. Test the connection with a mailbox on it.", "success")
            return redirect(url_for("admin.server_test", server_id=server.id))
    return render_template("admin/servers_form.html", form=form, server=None, **_labels())


@bp.route("/servers/<int:server_id>/edit", methods=["GET", "POST"])
def server_edit(server_id: int):
    """Change a mail server; the Test connection form sits below."""
    server = _server_or_404(server_id)
    form = ServerForm(obj=server)
    if form.validate_on_submit():
        try:
            mail_servers.update_server(server.id, form.values())
        except ServerError as exc:
            _apply_errors(form, exc)
        else:
            flash(f"Mail server \"{server.name}\" saved.", "success")
            return redirect(url_for("admin.servers"))
    return render_template("admin/servers_form.html", form=form, server=server,
                           test_form=_test_form(server), users=mail_servers.scanners_using(server), **_labels())


@bp.route("/servers/<int:server_id>/test", methods=["GET", "POST"])
def server_test(server_id: int):
    """Log in to IMAP and greet SMTP with the credentials given; show each check in words."""
    server = _server_or_404(server_id)
    form = _test_form(server, TestConnectionForm())
    results = None
    if form.validate_on_submit():
        try:
            results = mail_servers.test_server(server.id, login=form.login.data, password=form.password.data,
                                               account_id=form.account_id.data)
        except ServerError as exc:
            _apply_errors(form, exc)
    return render_template("admin/servers_test.html", server=server, form=form, test_form=form, results=results,
                           **_labels())


@bp.route("/servers/<int:server_id>/delete", methods=["GET", "POST"])
def server_delete(server_id: int):
    """Confirm (GET) and delete (POST) a server no scanner uses."""
    server = _server_or_404(server_id)
    # CSRFProtect has already checked the token of a POST before we get here.
    if request.method == "POST":
        try:
            name = mail_servers.delete_server(server.id)
        except ServerError as exc:
            flash(str(exc), "error")
        else:
            flash(f"Mail server \"{name}\" deleted.", "success")
        return redirect(url_for("admin.servers"))
    return render_template("admin/servers_delete.html", server=server, users=mail_servers.scanners_using(server),
                           **_labels())
