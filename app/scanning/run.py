"""One scan run from start to end: ``run_scan``.

1. Runs that died are closed first (``liveness``), then the mailbox is taken with a
   compare-and-set on ``mail_accounts.running_run_id``, in the transaction that creates the
   run: two workers never scan the same mailbox.
2. The run's setup is read once (``setup``), and nothing is held open in the database while
   the scan logs in (``login``).
3. The folder loop reads and stores the new mail (``folders``, ``chunks``, ``store``); before and
   after it, the actions owed on the server for stored messages are done (``housekeeping``).
4. The run ends as done, partial (some messages could not be handled), stopped, or failed, with
   its counters and a readable message, and the mailbox is freed (``_finish``).

A scanner without the *Create email* action stores nothing: its messages are only counted as
downloaded and its folders still advance (so switching the action on later starts from new
mail, not from the mailbox's beginning).
"""

from __future__ import annotations

import imaplib
import logging
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import MailAccount, MailSettings, ScanRun
from app.models.base import utcnow
from app.scanner.types import HELD_KINDS, RunCounters, held_summary
from app.scanning import housekeeping, liveness, login, progress
from app.scanning.errors import RunFailed, RunStopped, ScanAlreadyRunning, ScanError
from app.scanning.folders import scan_folders
from app.scanning.imap_reads import ImapReadError
from app.scanning.progress import ProgressCallback, Reporter, counter_values
from app.scanning.setup import load_setup

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult

logger = logging.getLogger(__name__)

_accounts = MailAccount.__table__
_runs = ScanRun.__table__


def run_scan(account_id: int, *, trigger: str = "manual", job_id: str | None = None,
             progress: ProgressCallback | None = None, seconds: float | None = None) -> ScanRun:
    """Scan one mailbox now, in this process; returns the finished run.

    The run reads at most the configured "Max per run" messages and, with ``seconds``, stops reading
    after that long (between batches). The returned run carries ``backlog`` (not a column): about
    how many new messages it left on the server, more than 0 when it stopped at one of those
    budgets; the scanner's ``backlog`` column says the same.

    Raises ``ScanAlreadyRunning`` (changing nothing) when another live run
    holds the mailbox, and ``ScanError`` for an unknown scanner. Every other
    failure ends as a failed run with a readable ``message``; the returned run
    then carries ``failure_kind`` (a ``MailConnectError`` kind, or None) so the
    job can retry connection problems. ``progress`` is called with a dict after
    the folders are planned and after every batch.
    """
    account = db.session.get(MailAccount, account_id)
    if account is None:
        raise ScanError(f"There is no scanner with id {account_id}.")
    liveness.close_dead_runs(account_id, current_job_id=job_id)
    db.session.refresh(account)
    run = _acquire(account, trigger, job_id)
    # The id is read once, here: after the database failed mid-run, touching the (expired) ORM
    # object would raise again (PendingRollbackError) instead of recording the failed run.
    run_id = run.id
    totals = RunCounters()
    report = Reporter(run_id, account_id, totals, progress)
    status, message, kind = "done", None, None
    try:
        report.backlog = _scan(run_id, account, report, seconds)
    except RunStopped as stop:
        if stop.status == "closed":
            # Another process closed this run as dead and may be scanning now: leave its record alone.
            db.session.rollback()
            logger.warning("scan run %s of account %s was closed by another process", run_id, account_id)
            return _result(run_id, None, None)
        status, message = stop.status, stop.message
    except RunFailed as fail:
        status, message, kind = "failed", fail.message, fail.kind
    except BaseException as exc:
        status, message = "failed", _unexpected(exc)
        logger.exception("scan run %s of account %s failed", run_id, account_id)
        _finish(run_id, account_id, totals, status, message, report.backlog)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit: recorded, then let the process stop
        return _result(run_id, None, None)
    _finish(run_id, account_id, totals, status, message, report.backlog)
    return _result(run_id, kind, report.backlog if status in ("done", "partial") else None)


def _acquire(account: MailAccount, trigger: str, job_id: str | None) -> ScanRun:
    """Create the run and take the mailbox with a compare-and-set, in one transaction."""
    if account.running_run_id is not None:
        raise ScanAlreadyRunning(account.id, account.running_run_id)
    now = utcnow()
    run = ScanRun(account_id=account.id, status="running", trigger=trigger, job_id=job_id,
                  runner=liveness.runner_id(), started_at=now, heartbeat_at=now, error_details="[]")
    db.session.add(run)
    db.session.flush()
    taken = cast("CursorResult[Any]", db.session.execute(
        update(_accounts).where(_accounts.c.id == account.id, _accounts.c.running_run_id.is_(None))
        .values(running_run_id=run.id))).rowcount
    if taken != 1:
        db.session.rollback()
        holder = db.session.scalar(select(MailAccount.running_run_id).where(MailAccount.id == account.id))
        raise ScanAlreadyRunning(account.id, holder)
    db.session.commit()
    return run


def _scan(run_id: int, account: MailAccount, report: Reporter, seconds: float | None) -> int:
    """Set up, log in, do the actions a killed run still owed, run the folder loop, do its actions, log out;
    returns the backlog the run leaves."""
    settings = MailSettings.get()
    setup = load_setup(run_id, account, settings, seconds)
    db.session.commit()  # nothing held open while we talk to the server
    box = login.log_in(account, settings)
    try:
        housekeeping.perform(box.client, setup, report.totals)
        backlog = scan_folders(box.client, setup, report.totals, report)
        housekeeping.perform(box.client, setup, report.totals)
        return backlog
    except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError) as exc:
        raise RunFailed(f"The connection to the mail server broke during the scan ({exc}). What was stored so far "
                        "is kept; the next run continues from there.", "protocol") from None
    except ImapReadError as exc:
        raise RunFailed(str(exc), "protocol") from None
    finally:
        try:
            box.logout()
        except Exception:  # the connection may already be gone; nothing to clean up then
            pass


def _finish(run_id: int, account_id: int, totals: RunCounters, status: str, message: str | None,
            backlog: int | None) -> None:
    """Record how the run ended (with the backlog it leaves, when it counted one) and free the mailbox."""
    try:
        db.session.rollback()
        if status == "done" and totals.errors:
            status = "partial"
        if message is None:
            message = _summary(totals)
        now = utcnow()
        db.session.execute(update(_runs).where(_runs.c.id == run_id).values(
            status=status, finished_at=now, message=message, **counter_values(totals)))
        values = {"last_run_at": now, "last_run_status": status,
                  "last_error": message if status in ("failed", "partial") else None}
        if status in ("done", "partial"):
            values["last_success_at"] = now
        if backlog is not None:
            values["backlog"] = backlog
        db.session.execute(update(_accounts).where(_accounts.c.id == account_id).values(**values))
        db.session.execute(update(_accounts).where(_accounts.c.id == account_id,
                                                   _accounts.c.running_run_id == run_id)
                           .values(running_run_id=None))
        db.session.commit()
    except SQLAlchemyError:
        # The database is gone: the run stays "running" until the next run closes it as dead.
        db.session.rollback()
        liveness.mark_unrecorded(run_id)
        logger.exception("could not record the end of scan run %s", run_id)


def _result(run_id: int, kind: str | None, backlog: int | None) -> ScanRun:
    """The finished run, with ``failure_kind`` (tells the job whether a retry may help) and ``backlog``
    (whether to continue it) set on the instance only, never stored."""
    run = db.session.get(ScanRun, run_id)
    if run is None:
        raise ScanError(f"The scan run {run_id} disappeared from the database.")
    run.failure_kind = kind
    run.backlog = backlog or 0
    progress.forget(run.account_id)
    return run


def _unexpected(exc: BaseException) -> str:
    """A readable message for a run that ended on an exception nobody planned for."""
    name = type(exc).__name__
    if name == "JobTimeoutException":
        return ("The scan took longer than the job time limit and was stopped. What was stored so far is kept; "
                "the next run continues from there.")
    if isinstance(exc, KeyboardInterrupt):
        return "The scan was interrupted (the process was asked to stop). The next run continues from there."
    if isinstance(exc, SQLAlchemyError):
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
        return f"The database failed during the scan ({detail}). The next run continues from the last saved batch."
    return f"The scan stopped on an unexpected error ({name}: {str(exc)[:300]}). The next run continues from there."


def _summary(t: RunCounters) -> str:
    """The message of a run that ended on its own."""
    text = (f"Downloaded {t.downloaded}, stored {t.created} new e-mail(s), {t.bound} bound, "
            f"{t.tickets_created} ticket(s) created, {t.tickets_reopened} reopened, {t.ignored} ignored, "
            f"{t.duplicates} already stored.")
    held = {kind: getattr(t, kind) for kind in HELD_KINDS}
    if any(held.values()):
        text += (f" {sum(held.values())} stored without opening or reopening tickets: "
                 f"{held_summary(held)}.")
    if t.after_store_done:
        text += f" {t.after_store_done} stored message(s) marked read, moved or deleted as set under After storing."
    if t.errors:
        text += f" {t.errors} message(s) could not be handled: see the errors."
    return text
