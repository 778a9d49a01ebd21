"""Records → Import CSV: upload, preview, import (in the request or on a worker), follow the progress.

Administrators only, like deleting: an import writes many records at once.
"""

from __future__ import annotations

from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from app.extensions import db
from app.records.blueprint import bp
from app.records.forms import ImportForm
from app.services import record_imports
from app.services.records_import import KINDS, ImportFailed

LISTS = {"contacts": "records.contacts", "organizations": "records.organizations", "leads": "records.leads"}


def _admin_only() -> None:
    if not current_user.is_admin:
        abort(403)


def _import_or_404(import_id: int):
    _admin_only()
    try:
        return record_imports.get_import(import_id)
    except record_imports.ImportNotFound:
        abort(404)


@bp.route("/import", methods=["GET", "POST"])
def import_upload():
    """Upload a CSV file; a file that can be imported goes to its preview, any other gets the reason."""
    _admin_only()
    form = ImportForm()
    if request.method == "GET" and request.args.get("kind") in KINDS:
        form.kind.data = request.args["kind"]
    if form.validate_on_submit():
        upload = form.file.data
        if upload is None or not getattr(upload, "filename", ""):
            form.file.errors = ["Choose a CSV file to upload."]
        else:
            try:
                row, _ = record_imports.upload(form.kind.data, upload.filename, upload.stream, current_user.id)
            except ImportFailed as exc:
                db.session.rollback()
                form.file.errors = [str(exc)]
            else:
                return redirect(url_for("records.import_detail", import_id=row.id))
    return render_template("records/import_upload.html", form=form, kinds=KINDS, recent=record_imports.recent())


@bp.route("/imports/<int:import_id>")
def import_detail(import_id: int):
    """An import: its preview before it starts, its progress while it runs, its report when it ends."""
    row = _import_or_404(import_id)
    preview = skipped = notes = None
    if row.status == "uploaded":
        try:
            preview = record_imports.preview_of(row)
        except ImportFailed as exc:  # the stored file was previewed at upload; say it anyway
            flash(str(exc), "error")
    elif row.finished:
        skipped, notes = record_imports.report_of(row)
    return render_template("records/import_detail.html", row=row, preview=preview, skipped=skipped, notes=notes,
                           list_endpoint=LISTS.get(row.kind, "records.contacts"))


@bp.route("/imports/<int:import_id>/start", methods=["POST"])
def import_start(import_id: int):
    """Import the previewed file: small files at once, bigger ones on a worker with a progress bar."""
    row = _import_or_404(import_id)
    try:
        record_imports.start(row)
    except ImportFailed as exc:
        flash(str(exc), "error")
    return redirect(url_for("records.import_detail", import_id=import_id))


@bp.route("/imports/<int:import_id>/cancel", methods=["POST"])
def import_cancel(import_id: int):
    """Drop an uploaded file that was not imported."""
    row = _import_or_404(import_id)
    try:
        record_imports.cancel(row)
    except ImportFailed as exc:
        flash(str(exc), "error")
        return redirect(url_for("records.import_detail", import_id=import_id))
    flash("Import cancelled; nothing was imported.", "info")
    return redirect(url_for("records.import_upload"))


@bp.route("/imports/<int:import_id>/progress")
def import_progress(import_id: int):
    """The progress of an import as JSON, for the progress bar."""
    return jsonify(record_imports.progress(_import_or_404(import_id)))
