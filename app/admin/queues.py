"""Mail tools → Queues: the RQ queues, their jobs, the workers, and retry / cancel."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, url_for
from flask_login import current_user

from app.admin.blueprint import bp
from app.services import queues
from app.services.queues import QueueActionError


@bp.route("/queues", endpoint="queues")
def queue_page():
    """Queued, running, finished and failed jobs per queue, and the live workers."""
    view = queues.overview()
    return render_template("admin/queues.html", view=view, sections=queues.SECTIONS,
                           optional_sections=queues.OPTIONAL_SECTIONS)


@bp.post("/queues/jobs/<job_id>/retry", endpoint="queue_retry")
def queue_retry(job_id: str):
    """Put a failed job back on its queue."""
    if not queues.JOB_ID_PATTERN.match(job_id):
        abort(404)
    try:
        queues.retry_job(job_id)
    except QueueActionError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Job {job_id} is queued again; a worker will pick it up.", "success")
    return redirect(url_for("admin.queues"))


@bp.post("/queues/jobs/<job_id>/cancel", endpoint="queue_cancel")
def queue_cancel(job_id: str):
    """Cancel a queued job, or stop a running one."""
    if not queues.JOB_ID_PATTERN.match(job_id):
        abort(404)
    try:
        done = queues.cancel_job(job_id, current_user.id)
    except QueueActionError as exc:
        flash(str(exc), "error")
    else:
        flash(done, "success")
    return redirect(url_for("admin.queues"))
