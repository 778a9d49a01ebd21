"""Which runs are still alive: runner ids, and closing the runs that died without finishing.

A run records the ``host:pid`` of the process that runs it (``runner_id``) and its RQ job id, and
writes a heartbeat with every batch. ``close_dead_runs`` runs before every scan (for its mailbox)
and on every schedule tick (for all of them).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from flask import current_app
from sqlalchemy import select, update

from app.extensions import db
from app.jobqueue import jobs
from app.models import MailAccount, MailSettings, ScanRun
from app.models.base import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

logger = logging.getLogger(__name__)

RUN_DIED = "The worker stopped without finishing (killed or crashed)."
RUN_UNRECORDED = ("The database was unavailable when the run ended, so its end could not be recorded. "
                  "What was stored before is kept.")
# A run on another host whose RQ job Redis does not know is taken for dead only once its heartbeat (written
# every batch) is this old: a Redis restart without persistence forgets the jobs of runs still working.
# RUN_DEAD_GRACE_SECONDS in the configuration changes it.
RQ_GONE_GRACE = timedelta(minutes=2)

_runs = ScanRun.__table__
_accounts = MailAccount.__table__

# Runs of this process whose end could not be written (database down): dead although this process lives on,
# so the next run here closes them instead of being refused as "already running" until the run timeout.
_unrecorded: set[tuple[str, int]] = set()  # (database URL, run id): ids are per database


def _unrecorded_key(run_id: int) -> tuple[str, int]:
    return (str(db.engine.url), run_id)


def mark_unrecorded(run_id: int) -> None:
    """The end of ``run_id`` could not be written: the next ``close_dead_runs`` here closes it."""
    _unrecorded.add(_unrecorded_key(run_id))


def runner_id() -> str:
    """``host:pid`` of this process, recorded on the runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this machine (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runner_gone(runner: str | None) -> bool:
    """True when the run was started on this host by a process that no longer exists."""
    if not runner or ":" not in runner:
        return False
    host, _, pid = runner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not pid_alive(int(pid))


def _rq_job_gone(job_id: str) -> bool:
    """True when RQ says the job that ran this scan is not running on a live worker."""
    if current_app.config.get("QUEUE_MODE") != "redis":
        return False
    try:
        return not jobs.job_running(job_id)
    except Exception:  # Redis unreachable: we cannot tell, the heartbeat timeout decides
        logger.debug("could not ask RQ about job %s", job_id, exc_info=True)
        return False


def _rq_gone_grace() -> timedelta:
    seconds = current_app.config.get("RUN_DEAD_GRACE_SECONDS")
    return timedelta(seconds=int(seconds)) if seconds is not None else RQ_GONE_GRACE


def _is_dead(run_id: int, last_sign: datetime, runner: str | None, job_id: str | None, *,
             timed_out: datetime, rq_grace_over: datetime, current_job_id: str | None) -> bool:
    """The rules of ``close_dead_runs`` for one running run; ``last_sign`` is its heartbeat (or start)."""
    if last_sign < timed_out or _runner_gone(runner) or _unrecorded_key(run_id) in _unrecorded:
        return True
    if not job_id:
        return False
    if job_id == current_job_id and runner != runner_id():
        return True  # its own job is starting again: the earlier attempt died
    return not (runner or "").startswith(socket.gethostname() + ":") and last_sign < rq_grace_over \
        and _rq_job_gone(job_id)


def close_dead_runs(account_id: int | None = None, *, current_job_id: str | None = None) -> int:
    """Close runs that died without finishing as failed, and free their mailboxes; returns how many.

    A run is dead when its heartbeat is older than the run timeout, when the
    process that ran it on this host is gone, or when its RQ job is no longer
    running on a live worker and its heartbeat is older than ``RQ_GONE_GRACE``
    (or is the job now starting again).
    """
    settings = MailSettings.get()
    now = utcnow()
    timed_out = now - timedelta(minutes=settings.run_timeout_minutes or 30)
    query = select(ScanRun.id, ScanRun.heartbeat_at, ScanRun.started_at, ScanRun.runner, ScanRun.job_id) \
        .where(ScanRun.status == "running")
    if account_id is not None:
        query = query.where(ScanRun.account_id == account_id)
    dead = [run_id for run_id, heartbeat, started, runner, job_id in db.session.execute(query).all()
            if _is_dead(run_id, heartbeat or started, runner, job_id, timed_out=timed_out,
                        rq_grace_over=now - _rq_gone_grace(), current_job_id=current_job_id)]
    closed = 0
    for run_id in dead:
        reason = RUN_UNRECORDED if _unrecorded_key(run_id) in _unrecorded else RUN_DIED
        closed += cast("CursorResult[Any]", db.session.execute(
            update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
            .values(status="failed", finished_at=now, message=reason))).rowcount
        db.session.execute(update(_accounts).where(_accounts.c.running_run_id == run_id)
                           .values(last_run_status="failed", last_error=reason))
    _free_mailboxes(account_id)
    db.session.commit()
    _unrecorded.difference_update(_unrecorded_key(run_id) for run_id in dead)
    if closed:
        logger.warning("closed %d dead scan run(s)", closed)
    return closed


def _free_mailboxes(account_id: int | None) -> None:
    """Free every mailbox held by a run that is not running any more (dead, or a release that was lost).

    Looked up first, so that the usual case (nothing to free) writes nothing.
    """
    stale = select(_accounts.c.id).join(_runs, _runs.c.id == _accounts.c.running_run_id) \
        .where(_runs.c.status != "running")
    if account_id is not None:
        stale = stale.where(_accounts.c.id == account_id)
    stale_ids = list(db.session.scalars(stale))
    if stale_ids:
        db.session.execute(update(_accounts).where(_accounts.c.id.in_(stale_ids),
                                                   _accounts.c.running_run_id.in_(
                                                       select(_runs.c.id).where(_runs.c.status != "running")))
                           .values(running_run_id=None))
