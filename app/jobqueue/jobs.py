"""Queue names, scan job ids and the scan job's enqueueing rules, declared once.

rq 2+ has no implicit connection: every Queue, Job and Worker here gets the
connection made from ``REDIS_URL`` explicitly. The scan job id is
``scan-<account id>``, built and parsed only here. A scan is enqueued only when
no job with that id is queued, scheduled or running on a live worker, so the
same scanner never runs twice at once (the database's compare-and-set when a
run starts is the last guard).

Scans use two queues, which workers take in this order (before the ``tasks`` queue):

- ``scan``: scans asked for (new mail reported by a watcher, the schedule, *Scan now*);
- ``backlog``: the continuation of a run that stopped at its budget of messages or time
  (``continue_scan_job``). It goes to the back of this queue, so mailboxes with backlogs take
  turns, and a scan of fresh mail in the ``scan`` queue never waits behind them.

A job cannot enqueue a job under its own id while it runs, so a scanner's continuations
alternate between two ids, ``scan-<id>`` and ``backlog-<id>``; a scan asked for while one of
them waits is already on its way.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import UTC, datetime, timedelta

import redis
from flask import Flask, current_app
from rq import Queue, Retry, Worker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus

from app.jobqueue.connection import redis_connection

SCAN_QUEUE = "scan"
BACKLOG_QUEUE = "backlog"
# Work other than scans (a CSV import of records): its own queue, so that it never waits behind scans.
TASKS_QUEUE = "tasks"
# Workers listen in this order: fresh scans first, then the continuations of backlogs, then other work.
QUEUE_NAMES = (SCAN_QUEUE, BACKLOG_QUEUE, TASKS_QUEUE)
SCAN_QUEUES = (SCAN_QUEUE, BACKLOG_QUEUE)
# The job functions, by dotted path: the queue never imports the RQ glue that runs them.
SCAN_JOB = "app.tasks.scan_job.scan_mailbox"
IMPORT_JOB = "app.tasks.import_job.import_records"
IMPORT_TIMEOUT = 3600
# Connection problems are retried with back-off; a wrong password is not (it fails the job's run once).
SCAN_RETRY = {"max": 3, "interval": [10, 30, 60]}
# Finished job records are kept briefly (the run itself lives in the database); failures a day.
RESULT_TTL = 600
FAILURE_TTL = 24 * 3600
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED)

_SCAN_JOB_ID = re.compile(r"^(?:scan|backlog)-(\d+)$")


def scan_job_id(account_id: int) -> str:
    """The stable job id of a scanner's scan."""
    return f"scan-{int(account_id)}"


def backlog_job_id(account_id: int) -> str:
    """The other id a scanner's scan job takes when it continues a backlog (see the module docstring)."""
    return f"backlog-{int(account_id)}"


def scanner_of_job(job_id: str | None) -> int | None:
    """The scanner id in a scan job id (either of its two), or None for any other job id."""
    match = _SCAN_JOB_ID.match(job_id or "")
    return int(match.group(1)) if match else None


def continuation_job_id(job_id: str) -> str:
    """The id the continuation of the scan job ``job_id`` takes: the other one of the scanner's two."""
    account_id = scanner_of_job(job_id)
    if account_id is None:
        raise ValueError(f"{job_id!r} is not a scan job id")
    return backlog_job_id(account_id) if job_id == scan_job_id(account_id) else scan_job_id(account_id)


def get_queue(app: Flask | None = None, name: str = SCAN_QUEUE, *, blocking: bool = False) -> Queue:
    """The named queue on an explicit connection; with QUEUE_MODE "inline", jobs run synchronously."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return Queue(name, connection=redis_connection(app, blocking=blocking),
                 is_async=app.config.get("QUEUE_MODE") != "inline")


def job_timeout(app: Flask) -> int:
    """Seconds RQ lets a scan job run: the run timeout of the mail configuration, plus a margin."""
    from app.models import MailSettings

    with app.app_context():
        minutes = MailSettings.get().run_timeout_minutes or 30
    return int(minutes * 60 + 120)


def busy_worker_stale_after(app: Flask | None = None) -> timedelta:
    """How old the heartbeat of a worker running a job may be before the worker is taken for dead.

    A worker running a job heartbeats every ``WORKER_HEARTBEAT_SECONDS`` (RQ's job monitoring
    interval); three missed heartbeats mean it is gone, whatever host it ran on.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    return timedelta(seconds=3 * int(app.config.get("WORKER_HEARTBEAT_SECONDS") or 30))


def worker_alive(conn: redis.Redis, name: str | None, stale_after: timedelta | None = None) -> bool:
    """True when the worker is registered and, if it runs on this host, its process exists.

    A worker killed with SIGKILL stays registered until its key expires (a
    minute or more); on the same host its missing process tells us at once, on
    another host a heartbeat older than ``stale_after`` does (for a worker that
    runs a job, which heartbeats regularly).
    """
    if not name:
        return False
    worker = Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=conn)
    if worker is None:
        return False
    if stale_after is not None and worker.last_heartbeat is not None and \
            datetime.now(UTC) - worker.last_heartbeat.replace(tzinfo=UTC) > stale_after:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        try:
            os.kill(worker.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


def _active(conn: redis.Redis, job: Job, stale_after: timedelta | None = None) -> bool:
    """Queued, scheduled (a retry waiting) or started on a worker that is still alive."""
    status = job.get_status(refresh=False)
    if status in WAITING:
        return True
    return status == JobStatus.STARTED and worker_alive(conn, job.worker_name, stale_after)


def job_running(job_id: str, app: Flask | None = None) -> bool:
    """True when the job is started on a live worker (used to tell dead scan runs)."""
    conn = redis_connection(app)
    try:
        job = Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) == JobStatus.STARTED and \
        worker_alive(conn, job.worker_name, busy_worker_stale_after(app))


def enqueue_scan_job(app: Flask, account_id: int, trigger: str = "manual", *,
                     event_at: float | None = None) -> str:
    """Enqueue the scan job of ``account_id`` unless the same scan is already queued or running."""
    return submit_scan_job(app, account_id, trigger, event_at=event_at)[0]


def submit_scan_job(app: Flask, account_id: int, trigger: str = "manual", *,
                    event_at: float | None = None) -> tuple[str, str]:
    """Enqueue a scan like ``enqueue_scan_job``; returns (job id, what happened).

    What happened is "queued" (a new job), "waiting" (the same scan was already waiting in a
    queue, a backlog's continuation included: it will see everything there is now) or "running"
    (the same scan is running on a live worker, and may have looked at the mailbox before the
    latest mail came). ``event_at`` (seconds since the epoch) is when the server reported the new
    mail: kept in the new job's meta as ``event_at``, from which the scan job measures the delivery
    latency.
    """
    conn = redis_connection(app)
    other = _fetch(conn, backlog_job_id(account_id))
    if other is not None and other.get_status(refresh=False) in WAITING:
        return other.id, "waiting"
    meta = {"account_id": account_id, "trigger": trigger, **({"event_at": event_at} if event_at is not None else {})}
    return _submit(app, SCAN_QUEUE, scan_job_id(account_id), account_id, trigger, meta)


def continue_scan_job(app: Flask, job_id: str, account_id: int) -> tuple[str, str]:
    """From inside the running scan job ``job_id``: queue its continuation at the back of the backlog queue.

    Returns (job id, what happened) as ``submit_scan_job`` does; "waiting" when a scan of the
    scanner already waits (it continues the backlog).
    """
    return _submit(app, BACKLOG_QUEUE, continuation_job_id(job_id), account_id, "backlog",
                   {"account_id": account_id, "trigger": "backlog"})


def _fetch(conn: redis.Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return None


def _submit(app: Flask, queue_name: str, job_id: str, account_id: int, trigger: str, meta: dict) -> tuple[str, str]:
    """Enqueue the scan job ``job_id`` on ``queue_name`` unless it is already waiting or running."""
    conn = redis_connection(app)
    queue = get_queue(app, queue_name)
    for _attempt in range(2):
        try:
            queue.enqueue_call(SCAN_JOB, args=(account_id, trigger), job_id=job_id, unique=True,
                               timeout=job_timeout(app), result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                               retry=Retry(**SCAN_RETRY), description=f"scan of scanner {account_id}", meta=meta)
            return job_id, "queued"
        except DuplicateJobError:
            job = _fetch(conn, job_id)
            if job is None:
                continue  # it ended between the two calls: enqueue again
            if _active(conn, job, busy_worker_stale_after(app)):
                # The same scan is already on its way.
                return job_id, "running" if job.get_status(refresh=False) == JobStatus.STARTED else "waiting"
            # Finished, failed, or started on a worker that died: replace it.
            job.delete(remove_from_queue=True)
    return job_id, "running"  # it kept changing under us: the caller asks again


def enqueue_import_job(app: Flask, import_id: int) -> str:
    """Put the CSV import ``import_id`` on the tasks queue; its progress lives in its record_imports row."""
    job_id = f"import-{int(import_id)}"
    get_queue(app, TASKS_QUEUE).enqueue_call(IMPORT_JOB, args=(import_id,), job_id=job_id, timeout=IMPORT_TIMEOUT,
                                             result_ttl=RESULT_TTL, failure_ttl=FAILURE_TTL,
                                             description=f"CSV import {import_id}")
    return job_id


def waiting_scans(app: Flask) -> int:
    """How many jobs wait in the scan and backlog queues (a worker continues a backlog in place only at 0)."""
    conn = redis_connection(app)
    pipe = conn.pipeline(transaction=False)
    for name in SCAN_QUEUES:
        pipe.llen(Queue(name, connection=conn).key)
    return sum(int(n) for n in pipe.execute())


def job_progress(app: Flask, account_id: int) -> tuple[dict, bool]:
    """(the job's progress meta, whether it is waiting in a queue) for a scanner's scan job.

    Of the scanner's two job ids, the running one is read first, else a waiting one.
    """
    conn = redis_connection(app)
    found = [job for job in (_fetch(conn, scan_job_id(account_id)), _fetch(conn, backlog_job_id(account_id)))
             if job is not None]
    if not found:
        return {}, False
    found.sort(key=lambda job: (job.get_status(refresh=False) != JobStatus.STARTED,
                                job.get_status(refresh=False) not in WAITING))
    job = found[0]
    return dict(job.get_meta(refresh=False) or {}), job.get_status(refresh=False) in WAITING
