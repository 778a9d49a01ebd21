"""A running scan's progress: reported to whoever watches, and saved on the run between batches.

- ``Reporter`` publishes where the scan is (folder, downloaded / total, created, errors) to the
  in-process store below and to the caller's callback (the RQ job writes it to the job's meta).
  The in-process store is what ``scan_progress`` reads for scans running in this process: the
  inline queue has no job meta.
- ``save_progress`` writes the run's counters and heartbeat; it is guarded by the run's status,
  so a run that another process closed as dead learns it at its next save.
- ``check_stop`` reads, between batches, whether a person asked the run to stop.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select, update

from app.extensions import db
from app.models import ScanRun
from app.models.base import utcnow
from app.scanner.types import HELD_KINDS, RunCounters
from app.scanning.errors import RunStopped, closed_as_dead

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

logger = logging.getLogger(__name__)

# The run keeps at most this many error details (the count is always exact).
MAX_ERROR_DETAILS = 1000

ProgressCallback = Callable[[dict[str, Any]], None]

_runs = ScanRun.__table__

# Progress of scans running in this process, by scanner id.
_local: dict[int, dict[str, Any]] = {}
_local_lock = threading.Lock()


def local_progress(account_id: int) -> dict[str, Any]:
    """The last progress a scan of ``account_id`` in this process reported (a copy; {} when none)."""
    with _local_lock:
        return dict(_local.get(account_id) or {})


def forget(account_id: int) -> None:
    """Drop the in-process progress of a scan that ended."""
    with _local_lock:
        _local.pop(account_id, None)


class Reporter:
    """Publishes a run's progress; ``total`` is the number of messages the run expects to read."""

    def __init__(self, run_id: int, account_id: int, totals: RunCounters,
                 callback: ProgressCallback | None = None) -> None:
        self.run_id = run_id
        self.account_id = account_id
        self.totals = totals
        self.callback = callback
        self.total = 0
        self.backlog: int | None = None  # new messages the run has yet to read (None until it planned)

    def __call__(self, folder: str) -> None:
        """Report the counters as they are now, while in ``folder`` ("" before the first)."""
        totals = self.totals
        info = {"run_id": self.run_id, "folder": folder, "downloaded": totals.downloaded, "total": self.total,
                "created": totals.created, "errors": totals.errors}
        with _local_lock:
            _local[self.account_id] = info
        if self.callback is not None:
            try:
                self.callback(dict(info))
            except Exception:  # progress is a courtesy (Redis may be restarting): never fail the scan for it
                logger.warning("progress report failed for run %s", self.run_id, exc_info=True)


def error_details_json(details: list[dict[str, Any]]) -> str:
    """The run's error list as stored on ScanRun.error_details."""
    return json.dumps(details, ensure_ascii=False)


def counter_values(t: RunCounters) -> dict[str, Any]:
    """The run's columns for the counters ``t``."""
    return {"downloaded": t.downloaded, "created": t.created, "bound": t.bound,
            "tickets_created": t.tickets_created, "tickets_reopened": t.tickets_reopened,
            "ignored": t.ignored, "duplicates": t.duplicates, "also_in": t.also_in,
            "also_in_details": json.dumps({str(k): v for k, v in sorted(t.also_in_details.items())}),
            "errors": t.errors, **{kind: getattr(t, kind) for kind in HELD_KINDS},
            "error_details": error_details_json(t.error_details[:MAX_ERROR_DETAILS])}


def merge(totals: RunCounters, delta: RunCounters) -> None:
    """Add ``delta`` to ``totals`` (error details appended, "also in" counts added per mailbox)."""
    for name, value in asdict(delta).items():
        if name == "error_details":
            totals.error_details.extend(value)
        elif name == "also_in_details":
            for account_id, count in value.items():
                totals.also_in_details[account_id] = totals.also_in_details.get(account_id, 0) + count
        else:
            setattr(totals, name, getattr(totals, name) + value)


def save_progress(run_id: int, totals: RunCounters) -> None:
    """The run's counters and heartbeat, guarded: 0 rows means the run was closed as dead meanwhile."""
    updated = cast("CursorResult[Any]", db.session.execute(
        update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
        .values(heartbeat_at=utcnow(), **counter_values(totals)))).rowcount
    if updated != 1:
        db.session.rollback()
        raise closed_as_dead()


def check_stop(run_id: int) -> None:
    """Between batches: a person asked to stop, or the run was closed by someone else."""
    row = db.session.execute(select(ScanRun.status, ScanRun.stop_requested, ScanRun.stopped_by_id)
                             .where(ScanRun.id == run_id)).one()
    db.session.commit()
    if row.status != "running":
        raise closed_as_dead()
    if row.stop_requested:
        raise RunStopped("stopped", "Stopped on request; what was stored so far is kept.")
