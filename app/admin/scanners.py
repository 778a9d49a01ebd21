"""Mail tools → Mail scanner: list, add, edit, delete, enable/disable, Scan now, Test login."""

from __future__ import annotations

from flask import abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from app import csp
from app.admin.blueprint import bp
from app.admin.scanner_forms import ScannerForm
from app.extensions import db
from app.models import MailServer, User
from app.services import scanner_fields, scanner_login, scanners
from app.services.scanners import ScannerError, ScannerNotFound


def _scanner_or_404(account_id: int):
    try:
        return scanners.get_scanner(account_id)
    except ScannerNotFound:
        abort(404)


def _fill_choices(form: ScannerForm) -> bool:
    """Fill the selects; False when there is no mail server to choose yet."""
    servers = db.session.execute(select(MailServer.id, MailServer.name).order_by(MailServer.name)).all()
    form.server_id.choices = [(s.id, s.name) for s in servers]
    users = db.session.execute(
        select(User.id, User.username, User.full_name).where(User.active.is_(True)).order_by(User.username)).all()
    form.assignee_id.choices = [(0, "— nobody —")] + [
        (u.id, f"{u.full_name} ({u.username})" if u.full_name else u.username) for u in users]
    return bool(servers)


def _apply_errors(form: ScannerForm, exc: ScannerError) -> None:
    """Show each service message next to its field; the rest as a flash."""
    for field, message in exc.errors.items():
        if field in form and field != "folders":
            form[field].errors = list(form[field].errors) + [message]
        else:
            flash(message, "error")


def _allow_connect(accounts) -> None:
    """The page may post Connect account, which the provider's sign-in page answers."""
    csp.allow_form_targets(a.server.oauth_authorize_url for a in accounts
                           if a.server.auth_method == "oauth2")


def _render_form(form: ScannerForm, account=None):
    if account is not None:
        _allow_connect([account])
    oauth_ids = db.session.scalars(select(MailServer.id).where(MailServer.auth_method == "oauth2")).all()
    return render_template("admin/scanners_form.html", form=form, account=account, oauth_server_ids=oauth_ids,
                           folder_error=getattr(form, "folder_error", None))


def _add_rows(form: ScannerForm, pairs) -> None:
    while len(form.folders.entries):
        form.folders.pop_entry()
    for name, direction in pairs:
        form.folders.append_entry({"name": name, "direction": direction})


@bp.route("/scanners", endpoint="scanners")
def scanner_list():
    """The scanners with their health and last run."""
    accounts = scanners.list_scanners()
    assignee_ids = {a.assignee_id for a in accounts if a.assignee_id}
    # One query for every assignee instead of one per row.
    assignees = {u.id: u for u in db.session.scalars(select(User).where(User.id.in_(assignee_ids)))} \
        if assignee_ids else {}
    _allow_connect(accounts)
    return render_template("admin/scanners.html", accounts=accounts, assignees=assignees,
                           health_of=scanners.health_of, action_labels=scanner_fields.ACTION_LABELS,
                           after_store_labels=scanner_fields.AFTER_STORE_LABELS,
                           search_labels=scanner_fields.SEARCH_FIELD_LABELS)


def _existing(form: ScannerForm) -> scanner_fields.ExistingMail:
    """The form's choices for the mail already in the mailbox."""
    return scanner_fields.ExistingMail(archive=bool(form.archive_existing.data), since=form.since_date.data or "")


@bp.route("/scanners/new", methods=["GET", "POST"])
def scanner_new():
    """Add a scanner."""
    form = ScannerForm()
    if not _fill_choices(form):
        flash("Add a mail server first: a scanner reads a mailbox on one of them.", "info")
        return redirect(url_for("admin.scanners"))
    if request.method == "GET":
        form.actions.data = list(scanner_fields.DEFAULT_ACTIONS)
        form.search_fields.data = list(scanner_fields.DEFAULT_SEARCH_FIELDS)
        _add_rows(form, scanner_fields.DEFAULT_FOLDERS + [("", "")])
    if form.validate_on_submit():
        try:
            account = scanners.create_scanner(
                form.name.data, form.server_id.data, form.login.data, form.password.data,
                form.folder_pairs(), form.actions.data or [], form.search_fields.data or [],
                form.assignee_id.data, after_store=form.after_store.data,
                after_store_folder=form.after_store_folder.data, existing=_existing(form))
        except ScannerError as exc:
            _apply_errors(form, exc)
        else:
            flash(f"Scanner {account.name} added.", "success")
            return redirect(url_for("admin.scanners"))
    return _render_form(form)


@bp.route("/scanners/<int:account_id>/edit", methods=["GET", "POST"])
def scanner_edit(account_id: int):
    """Edit a scanner; an empty password keeps the stored one."""
    account = _scanner_or_404(account_id)
    form = ScannerForm(obj=account if request.method == "GET" else None)
    _fill_choices(form)
    if request.method == "GET":
        form.assignee_id.data = str(account.assignee_id or 0)
        form.actions.data = account.action_list
        form.search_fields.data = account.search_field_list
        _add_rows(form, [(f.name, f.direction) for f in account.folders] + [("", "")])
    if form.validate_on_submit():
        try:
            scanners.update_scanner(
                account.id, name=form.name.data, server_id=form.server_id.data, login=form.login.data,
                password=form.password.data, folders=form.folder_pairs(), actions=form.actions.data or [],
                search_fields=form.search_fields.data or [], assignee_id=form.assignee_id.data,
                after_store=form.after_store.data, after_store_folder=form.after_store_folder.data,
                existing=_existing(form))
        except ScannerError as exc:
            db.session.rollback()
            _apply_errors(form, exc)
        else:
            flash(f"Scanner {account.name} saved.", "success")
            return redirect(url_for("admin.scanners"))
    form.password.data = ""
    return _render_form(form, account)


@bp.route("/scanners/<int:account_id>/delete", methods=["POST"])
def scanner_delete(account_id: int):
    """Delete a scanner with its stored e-mails and history."""
    _scanner_or_404(account_id)
    name = scanners.delete_scanner(account_id)
    flash(f"Scanner {name} deleted, with its stored e-mails and download history.", "success")
    return redirect(url_for("admin.scanners"))


@bp.route("/scanners/<int:account_id>/enable", methods=["POST"])
def scanner_enable(account_id: int):
    """Enable a scanner: it is scanned on schedule again."""
    _scanner_or_404(account_id)
    account = scanners.set_enabled(account_id, True)
    flash(f"Scanner {account.name} enabled.", "success")
    return redirect(url_for("admin.scanners"))


@bp.route("/scanners/<int:account_id>/disable", methods=["POST"])
def scanner_disable(account_id: int):
    """Disable a scanner: it is no longer scanned."""
    _scanner_or_404(account_id)
    account = scanners.set_enabled(account_id, False)
    flash(f"Scanner {account.name} disabled.", "success")
    return redirect(url_for("admin.scanners"))


@bp.route("/scanners/<int:account_id>/test-login", methods=["POST"])
def scanner_test_login(account_id: int):
    """Log in with the stored credentials; success unblocks a blocked scanner."""
    _scanner_or_404(account_id)
    result = scanner_login.test_login(account_id)
    flash(result.message, "success" if result.ok else "error")
    return redirect(url_for("admin.scanners"))


@bp.route("/scanners/<int:account_id>/scan", methods=["POST"])
def scanner_scan_now(account_id: int):
    """Scan now: put a scan job on the queue (the list then shows its progress)."""
    account = _scanner_or_404(account_id)
    if not account.enabled:
        flash(f"Scanner {account.name} is disabled: enable it first, then scan.", "error")
        return redirect(url_for("admin.scanners"))
    from app.services import scans

    try:
        scans.enqueue_scan(account.id, trigger="manual")
    except Exception as exc:  # a queue that is down must read as words on the page, not a 500
        db.session.rollback()
        flash(f"The scan of {account.name} could not be started: {exc}. "
              "Check that Redis and a worker are running (see Mail tools → Queues).", "error")
    else:
        if current_app.config.get("QUEUE_MODE") == "inline":
            # The scan ran in this request: say how it ended.
            db.session.refresh(account)
            status = account.last_run_status or "unknown"
            message = f"Scan of {account.name} finished: {status}."
            if status == "failed" and account.last_error:
                message += f" {account.last_error}"
            flash(message, {"done": "success", "failed": "error"}.get(status, "info"))
            return redirect(url_for("admin.scanners"))
        flash(f"Scan of {account.name} queued; its progress shows below.", "success")
    return redirect(url_for("admin.scanners", _anchor=f"scanner-{account.id}"))


@bp.route("/scanners/<int:account_id>/progress")
def scan_progress(account_id: int):
    """JSON for the live progress bar: state, run id, downloaded, total."""
    _scanner_or_404(account_id)
    from app.services import scans

    try:
        progress = dict(scans.scan_progress(account_id))
    except Exception as exc:  # the page polls this; an unreachable queue is a state, not an error page
        return jsonify({"state": "unknown", "error": f"Progress is not available: {exc}"})
    return jsonify(progress)


@bp.route("/scanners/folders", methods=["POST"])
def scanner_folders():
    """JSON list of the server's real folders, read by logging in with the typed (or stored) password."""
    try:
        folders = scanner_login.list_server_folders(
            request.form.get("server_id"), request.form.get("login", ""),
            request.form.get("password") or None, request.form.get("account_id") or None)
    except ScannerError as exc:
        return jsonify({"error": str(exc)}), 400
    return jsonify({"folders": folders})
