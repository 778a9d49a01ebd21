"""What the RQ queues hold, for the Queues page and /metrics, and the operator's retry / cancel.

Every Redis call goes through an explicit connection (RQ 2+ has no implicit
one) opened with short timeouts, so a dead Redis makes the page say so in
plain words instead of hanging or failing with a 500.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime

import redis
from flask import current_app
from rq import Queue, Worker
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import (
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result
from sqlalchemy import select

from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection, unreachable_message
from app.logging_setup import redact
from app.models import MailAccount, ScanRun
from app.services import audit, scans

logger = logging.getLogger(__name__)

JOBS_PER_SECTION = 50
ERROR_LINES = 6
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
SECTIONS = ("queued", "scheduled", "running", "finished", "failed")
# The section a job's own status puts it in, whichever list it was read from.
_STATUS_SECTIONS = {"queued": "queued", "started": "running"}
# Sections the page leaves out when they are empty (most of the time).
OPTIONAL_SECTIONS = ("scheduled",)


class QueueUnavailable(Exception):
    """Redis cannot be reached, or the app runs its queue in-process; str() is for people."""


class QueueActionError(Exception):
    """A retry or cancel that cannot be done; str() says why in plain words."""


@dataclass
class JobView:
    """One RQ job as the Queues page shows it: status, scanner, times, progress and the error's last lines."""

    id: str
    status: str
    account_id: int | None = None
    scanner: str | None = None
    func: str | None = None
    enqueued_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None
    progress: dict = field(default_factory=dict)
    worker: str | None = None
    scheduled_for: datetime | None = None

    run_failed: bool = False  # the job finished, but the scan it ran failed (e.g. a wrong password)

    @property
    def can_retry(self) -> bool:
        """True only for a job that failed or was stopped: Retry always means "run this failed job again".

        A finished job whose scan failed (a wrong password) has nothing to
        retry: the scanner's own Scan now, after the cause is fixed, is the way.
        """
        return self.status in ("failed", "stopped")

    @property
    def can_cancel(self) -> bool:
        """True when Cancel makes sense: the job has not ended."""
        return self.status in ("queued", "started", "deferred", "scheduled")


@dataclass
class QueueView:
    """One queue: its counts per registry and its jobs per section."""

    name: str
    counts: dict[str, int]
    jobs: dict[str, list[JobView]]


@dataclass
class WorkerView:
    """One live RQ worker as the Queues page shows it."""

    name: str
    state: str
    current_job: str | None
    last_heartbeat: datetime | None
    queues: list[str]
    hostname: str | None
    pid: int | None


@dataclass
class Overview:
    """The Queues page: every queue and worker, or the words saying why they cannot be shown."""

    mode: str  # "redis" or "inline"
    error: str | None = None
    queues: list[QueueView] = field(default_factory=list)
    workers: list[WorkerView] = field(default_factory=list)


INLINE_MESSAGE = ("The queue runs in-process (QUEUE_MODE=inline): each scan runs inside the web or CLI process "
                  "that starts it, so there are no queued jobs or workers to show. Set QUEUE_MODE=redis and start "
                  "workers with `python worker.py` to use RQ.")


def queue_names() -> list[str]:
    """The queue names, as the job queue declares them."""
    return list(jobs.QUEUE_NAMES)


# ---------------------------------------------------------------- reading

def overview(limit: int = JOBS_PER_SECTION) -> Overview:
    """Every queue's queued / running / finished / failed jobs and the live workers.

    Never raises for a dead Redis: the returned ``error`` says what is wrong.
    """
    if current_app.config.get("QUEUE_MODE") == "inline":
        return Overview(mode="inline", error=INLINE_MESSAGE)
    conn = redis_connection()
    try:
        conn.ping()
        queues = [_queue_view(Queue(name, connection=conn), limit) for name in queue_names()]
        workers = _workers(conn)
    except redis.RedisError as exc:
        logger.warning("queues page: Redis unreachable: %s", exc)
        return Overview(mode="redis", error=unreachable_message(current_app.config["REDIS_URL"]))
    _name_scanners([job for q in queues for jobs in q.jobs.values() for job in jobs])
    return Overview(mode="redis", queues=queues, workers=workers)


def registry_counts(conn: redis.Redis, name: str) -> dict[str, int]:
    """Jobs per registry of one queue (used by the page and /metrics)."""
    q = Queue(name, connection=conn)
    return {
        "queued": q.count,
        "started": StartedJobRegistry(name, connection=conn).count,
        "finished": FinishedJobRegistry(name, connection=conn).count,
        "failed": FailedJobRegistry(name, connection=conn).count,
        "deferred": DeferredJobRegistry(name, connection=conn).count,
        "scheduled": ScheduledJobRegistry(name, connection=conn).count,
    }


def _queue_view(q: Queue, limit: int) -> QueueView:
    conn = q.connection
    counts = registry_counts(conn, q.name)
    scheduled = ScheduledJobRegistry(q.name, connection=conn)
    ids = {
        "queued": q.get_job_ids(0, limit),
        # Retries waiting for their back-off interval (and jobs enqueued for later).
        "scheduled": scheduled.get_job_ids(0, limit - 1),
        "running": StartedJobRegistry(q.name, connection=conn).get_job_ids(0, limit - 1),
        # Newest first: these registries are scored by expiry, which follows the end time.
        "finished": FinishedJobRegistry(q.name, connection=conn).get_job_ids(0, limit - 1, desc=True),
        "failed": FailedJobRegistry(q.name, connection=conn).get_job_ids(0, limit - 1, desc=True),
    }
    jobs: dict[str, list[JobView]] = {}
    for section, job_ids in ids.items():
        fetched = Job.fetch_many(job_ids, connection=conn) if job_ids else []
        jobs[section] = [_job_view(job) for job in fetched if job is not None]
    _sort_by_status(jobs)
    for view in jobs["scheduled"]:
        try:
            view.scheduled_for = scheduled.get_scheduled_time(view.id)
        except Exception:  # it left the registry meanwhile
            view.scheduled_for = None
    return QueueView(name=q.name, counts=counts, jobs=jobs)


def _sort_by_status(jobs: dict[str, list[JobView]]) -> None:
    """Show a job under "Queued" or "Running" by its own status, not by the list it was read from.

    The queue and the started registry are read one after the other while a
    worker moves jobs between them, so one job can be read from both, or from
    the registry a moment before its status says "started". Each job is shown
    once, under the section its status names.
    """
    moving = [(section, view) for section in ("queued", "running") for view in jobs[section]]
    jobs["queued"], jobs["running"] = [], []
    seen: set[str] = set()
    for section, view in moving:
        if view.id in seen:
            continue
        seen.add(view.id)
        jobs[_STATUS_SECTIONS.get(view.status, section)].append(view)


def _job_view(job: Job) -> JobView:
    status = job.get_status(refresh=False)
    status = status.value if isinstance(status, JobStatus) else str(status or "unknown")
    view = JobView(id=job.id, status=status, enqueued_at=job.enqueued_at, started_at=job.started_at,
                   ended_at=job.ended_at, worker=job.worker_name)
    view.account_id = jobs.scanner_of_job(job.id)
    try:
        view.func = job.func_name
        if view.account_id is None and job.args and isinstance(job.args[0], int):
            view.account_id = job.args[0]
    except Exception:  # a job whose payload cannot be read here is still listed
        pass
    meta = job.meta or {}
    view.progress = {k: meta[k] for k in ("downloaded", "total", "run_id", "folder", "stage") if k in meta}
    if status in ("failed", "stopped"):
        view.error = _last_error_lines(job)
    elif status == "finished":
        # A wrong password is not retried by RQ, so its job "finishes": the failure is in the result.
        outcome = _finished_outcome(job)
        if outcome.get("status") == "failed":
            view.run_failed = True
            view.error = "Run failed: " + (outcome.get("message") or "see the download history for the reason.")
    return view


def _finished_outcome(job: Job) -> dict:
    try:
        value = job.return_value(refresh=False)
    except Exception:  # an unreadable result is shown as a plain finished job
        return {}
    return value if isinstance(value, dict) else {}


def _last_error_lines(job: Job) -> str | None:
    """The end of the traceback: where the reason is. Jinja escapes it on the page."""
    text = None
    try:
        result = job.latest_result()
        if result is not None and result.type == Result.Type.FAILED:
            text = result.exc_string
    except Exception:
        text = None
    if not text:
        text = getattr(job, "_exc_info", None)
    if not text:
        return None
    lines = [line for line in str(text).strip().splitlines() if line.strip()]
    return redact("\n".join(lines[-ERROR_LINES:]))


def _name_scanners(jobs: list[JobView]) -> None:
    """Scanner names for every job, in one query."""
    ids = {j.account_id for j in jobs if j.account_id is not None}
    if not ids:
        return
    rows = db.session.execute(select(MailAccount.id, MailAccount.name, MailAccount.last_error)
                              .where(MailAccount.id.in_(ids))).all()
    names = {r.id: r.name for r in rows}
    last_errors = {r.id: r.last_error for r in rows}
    for job in jobs:
        if job.account_id is not None:
            job.scanner = names.get(job.account_id, f"deleted scanner #{job.account_id}")
            # RQ keeps no error for an attempt it will retry; the scanner's last run says why.
            if job.status == "scheduled" and not job.error and last_errors.get(job.account_id):
                job.error = f"Last run: {last_errors[job.account_id]}"


def _workers(conn: redis.Redis) -> list[WorkerView]:
    views = []
    for w in Worker.all(connection=conn):
        views.append(WorkerView(name=w.name, state=str(w.get_state()), current_job=w.get_current_job_id(),
                                last_heartbeat=w.last_heartbeat, queues=w.queue_names(),
                                hostname=w.hostname, pid=w.pid))
    return sorted(views, key=lambda v: v.name)


# ---------------------------------------------------------------- actions

def _fetch(conn: redis.Redis, job_id: str) -> Job:
    if not JOB_ID_PATTERN.match(job_id or ""):
        raise QueueActionError("That is not a job id.")
    try:
        return Job.fetch(job_id, connection=conn)
    except NoSuchJobError as exc:
        raise QueueActionError(f"Job {job_id} no longer exists; the page was out of date.") from exc


def _connection_or_error() -> redis.Redis:
    if current_app.config.get("QUEUE_MODE") == "inline":
        raise QueueActionError(INLINE_MESSAGE)
    conn = redis_connection()
    try:
        conn.ping()
    except redis.RedisError as exc:
        raise QueueActionError(unreachable_message(current_app.config["REDIS_URL"])) from exc
    return conn


def retry_job(job_id: str) -> Job:
    """Put a failed job back on its queue (same id, so a scanner is never queued twice)."""
    conn = _connection_or_error()
    job = _fetch(conn, job_id)
    registry = FailedJobRegistry(job.origin, connection=conn)
    if job.id not in registry and _finished_outcome(job).get("status") == "failed":
        # The job ended normally but its scan failed: run the scan again as a new job.
        account_id = jobs.scanner_of_job(job.id)
        if account_id is not None:
            new_id = scans.enqueue_scan(account_id, trigger="manual")
            audit.record("queue.retry", job_id, f"queue={job.origin}; scan enqueued again")
            db.session.commit()
            return _fetch(conn, new_id)
    if job.id not in registry:
        raise QueueActionError(f"Job {job_id} has not failed (it is {_status_text(job)}), so there is "
                               "nothing to retry.")
    try:
        registry.requeue(job)
    except InvalidJobOperation as exc:
        raise QueueActionError(f"Job {job_id} could not be requeued; reload the page and try again.") from exc
    audit.record("queue.retry", job_id, f"queue={job.origin}")
    db.session.commit()
    logger.info("job requeued", extra={"queue_job": job_id, "queue": job.origin})
    return job


def cancel_job(job_id: str, user_id: int | None) -> str:
    """Cancel a queued job, or ask a running one to stop; returns what was done, in words."""
    conn = _connection_or_error()
    job = _fetch(conn, job_id)
    status = job.get_status()
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
        try:
            job.cancel()
        except InvalidJobOperation as exc:
            raise QueueActionError(f"Job {job_id} was already cancelled.") from exc
        done = f"Job {job_id} was cancelled before it started."
    elif status == JobStatus.STARTED:
        done = _stop_running(conn, job, user_id)
    else:
        raise QueueActionError(f"Job {job_id} is {_status_text(job)}; only queued or running jobs can be "
                               "cancelled.")
    audit.record("queue.cancel", job_id, done)
    db.session.commit()
    logger.info("job cancelled", extra={"queue_job": job_id, "queue": job.origin})
    return done


def _stop_running(conn: redis.Redis, job: Job, user_id: int | None) -> str:
    """Prefer the scan's own stop (it commits its progress); else tell the worker to stop the job."""
    run = None
    account_id = jobs.scanner_of_job(job.id)
    if account_id is not None:
        run = db.session.scalar(
            select(ScanRun).where(ScanRun.account_id == account_id, ScanRun.status == "running")
            .order_by(ScanRun.started_at.desc()).limit(1))
    if run is not None and user_id is not None:
        try:
            scans.request_stop(run.id, user_id)
        except scans.ScanError:
            pass  # the run ended meanwhile: stopping the job itself is all that is left
        else:
            return f"Job {job.id} was asked to stop; it stops after the batch it is storing."
    try:
        send_stop_job_command(conn, job.id)
    except InvalidJobOperation as exc:
        raise QueueActionError(f"Job {job.id} is not running on any worker any more.") from exc
    return f"Job {job.id} was stopped on its worker."


def _status_text(job: Job) -> str:
    status = job.get_status(refresh=False)
    return status.value if isinstance(status, JobStatus) else str(status or "gone")
