"""Scans as the views and the CLI ask for them: queue one, follow its progress, stop it.

The scan itself is ``app.scanning.run.run_scan``. ``ScanError`` and ``ScanAlreadyRunning`` are
the scan's own errors, importable from here for the callers of these use cases.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select, update

from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_location
from app.models import MailAccount, ScanRun
from app.scanning import progress
from app.scanning.errors import ScanAlreadyRunning, ScanError
from app.scanning.run import run_scan
from app.services import audit

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

__all__ = ["ScanAlreadyRunning", "ScanError", "enqueue_scan", "request_stop", "scan_progress"]

logger = logging.getLogger(__name__)

_runs = ScanRun.__table__


def enqueue_scan(account_id: int, *, trigger: str = "manual") -> str:
    """Queue a scan of one mailbox (job id ``scan-<id>``, never twice at once); returns the job id.

    With ``QUEUE_MODE == "inline"`` the scan runs here and now, in this process, with the
    process's usual interpreter settings (``app.scanning.runtime`` says why).
    """
    job_id = jobs.scan_job_id(account_id)
    if db.session.get(MailAccount, account_id) is None:
        raise ScanError(f"There is no scanner with id {account_id}.")
    if current_app.config.get("QUEUE_MODE") == "inline":
        try:
            run_scan(account_id, trigger=trigger, job_id=None)
        except ScanAlreadyRunning:
            pass  # the running scan is the one asked for
        return job_id
    try:
        return jobs.enqueue_scan_job(current_app._get_current_object(), account_id, trigger)  # type: ignore[attr-defined]
    except RedisError as exc:
        where = redis_location(current_app.config.get("REDIS_URL"))
        raise ScanError(f"The scan queue (Redis at {where}) is not reachable ({exc}), so the scan was not "
                        "queued. Start Redis and a worker (`python worker.py`), or run the scan from the "
                        "command line with `flask --app wsgi scanners run ID`.") from exc


def scan_progress(account_id: int) -> dict[str, Any]:
    """Where a scanner is: idle, queued or running, with downloaded / total when running."""
    run = db.session.scalar(select(ScanRun).where(ScanRun.account_id == account_id, ScanRun.status == "running")
                            .order_by(ScanRun.started_at.desc()).limit(1))
    meta: dict[str, Any] = {}
    queued = False
    if current_app.config.get("QUEUE_MODE") == "redis":
        try:
            meta, queued = jobs.job_progress(current_app._get_current_object(), account_id)  # type: ignore[attr-defined]
        except Exception:  # Redis down: the database still knows about running scans
            logger.debug("no job progress for account %s", account_id, exc_info=True)
    local = progress.local_progress(account_id)
    if run is not None:
        info = meta if meta.get("run_id") == run.id else local if local.get("run_id") == run.id else {}
        downloaded = max(run.downloaded or 0, int(info.get("downloaded") or 0))
        return {"state": "running", "run_id": run.id, "downloaded": downloaded,
                "total": max(int(info.get("total") or 0), downloaded)}
    if queued:
        return {"state": "queued", "run_id": None, "downloaded": 0, "total": 0}
    return {"state": "idle", "run_id": None, "downloaded": 0, "total": 0}


def request_stop(run_id: int, user_id: int) -> None:
    """Ask a running scan to stop after its current batch, recording who asked."""
    updated = cast("CursorResult[Any]", db.session.execute(
        update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
        .values(stop_requested=True, stopped_by_id=user_id))).rowcount
    if updated != 1:
        db.session.rollback()
        raise ScanError("This scan has already ended; there is nothing to stop.")
    audit.record("scan.stop", f"run {run_id}")
    db.session.commit()
