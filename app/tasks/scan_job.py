"""The RQ job: scan one mailbox. Glue only; the work is ``app.scanning.run.run_scan``.

The job runs the scan under ``app.scanning.runtime.scan_runtime()``: a work horse does nothing
else while it scans.
"""

from __future__ import annotations

import os
import time

from rq import get_current_job

# The app this process's jobs run in. worker.py builds it once before RQ forks a work horse per job,
# so a job does not pay create_app (about a second) again; see use_app.
_app = None
_app_pid = None


def use_app(app) -> None:
    """Let jobs in this process (and the work horses it forks) reuse ``app``."""
    global _app, _app_pid
    _app, _app_pid = app, os.getpid()


def job_app():
    """The app this process's jobs run in (built once, then shared by the work horses it forks)."""
    return _job_app()


def _job_app():
    if _app is None:
        from app import create_app

        use_app(create_app())
    return _app


class ScanConnectionError(Exception):
    """The mail server could not be reached: raised so RQ retries the job with back-off."""


def scan_mailbox(account_id: int, trigger: str = "schedule") -> dict:
    """Scan a mailbox in a fresh app context; progress goes to the job's meta.

    A run that stops at its budget (messages, or ``SCAN_RUN_SECONDS``) leaves a backlog, which is
    continued at once: here, in place, while no other scan waits in the queues (no fork, no queue
    round trip), else by a job at the back of the backlog queue, so the other mailboxes get their
    turn first.
    """
    from app.extensions import db
    from app.scanning.runtime import scan_runtime

    job = get_current_job()
    app = _job_app()
    with app.app_context():
        if os.getpid() != _app_pid:
            # A forked work horse must not reuse the parent's pooled database connections.
            db.engine.dispose(close=False)
        began = time.monotonic()
        runs = 0
        with scan_runtime():  # once for all the runs of this job: it does nothing else meanwhile
            while True:
                outcome, run = _one_run(app, account_id, trigger, job, record_latency=runs == 0)
                runs += 1
                if run is None or not run.backlog:
                    break
                if not _continue_in_place(app, job, began):
                    outcome["continued_by"] = _queue_continuation(app, job, account_id)
                    break
                trigger = "backlog"
        if runs > 1:
            outcome["runs"] = runs
        return outcome


def _one_run(app, account_id: int, trigger: str, job, *, record_latency: bool) -> tuple[dict, object | None]:
    """One run: (the job's result, the finished run or None when there was none)."""
    from app.scanning.errors import RETRYABLE_KINDS, ScanAlreadyRunning, ScanError
    from app.scanning.run import run_scan

    def progress(info: dict) -> None:
        job.meta.update(info)
        job.save_meta()

    try:
        run = run_scan(account_id, trigger=trigger, job_id=job.id if job else None,
                       progress=progress if job else None, seconds=app.config.get("SCAN_RUN_SECONDS"))
    except ScanAlreadyRunning as busy:
        return {"status": "already_running", "run_id": busy.run_id}, None
    except ScanError as exc:  # the scanner was deleted meanwhile: nothing to retry
        return {"status": "gone", "message": str(exc)}, None
    if job is not None and run.downloaded and record_latency:
        _record_latency(job)
    if run.status == "failed" and getattr(run, "failure_kind", None) in RETRYABLE_KINDS:
        raise ScanConnectionError(run.message)
    return {"status": run.status, "run_id": run.id, "downloaded": run.downloaded, "created": run.created,
            "message": run.message, "backlog": run.backlog}, run


def _continue_in_place(app, job, began: float) -> bool:
    """Continue a backlog in this job: allowed, nothing else waits, and well within the job's time limit."""
    from app.jobqueue import jobs

    if job is None:
        return True  # not on a queue (a direct call): nobody else to give the turn to
    if not app.config.get("SCAN_CONTINUE_IN_PLACE", True) or _worker_stopping(job):
        return False
    limit = job.timeout if isinstance(job.timeout, int | float) and job.timeout > 0 else 0
    if limit and time.monotonic() - began > limit / 2:
        return False
    return jobs.waiting_scans(app) == 0


def _worker_stopping(job) -> bool:
    """The worker running this job was asked to stop (a warm shutdown waits for the job): the backlog
    then goes to the queue rather than keeping the worker busy."""
    from redis.exceptions import RedisError
    from rq import Worker

    name = getattr(job, "worker_name", None)
    if not name:
        return False
    try:
        return bool(job.connection.hexists(Worker.redis_worker_namespace_prefix + name, "shutdown_requested_date"))
    except RedisError:
        return False


def _queue_continuation(app, job, account_id: int) -> str:
    """Queue the continuation at the back of the backlog queue; returns what happened ("queued", ...)."""
    from app.jobqueue import jobs

    if job is None:
        return "none"
    return jobs.continue_scan_job(app, job.id, account_id)[1]


def _record_latency(job) -> None:
    """A run a watcher asked for stored mail: add the time from the watcher's event to now."""
    import time

    from redis.exceptions import RedisError

    from app.watch.telemetry import EVENT_META, record_latency

    event_at = (job.meta or {}).get(EVENT_META)
    if not event_at:
        return
    try:
        record_latency(job.connection, time.time() - float(event_at))
    except RedisError:  # a figure lost; the scan itself is done
        pass
