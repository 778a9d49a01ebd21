"""Scan runs: one scanner's mailbox read from IMAP into e-mails, links and tickets.

``run_scan`` drives the pipeline (``app.scanner``) over the IMAP reads of
``imap_fetch`` and the batch writes of ``mail_store``:

- it first closes runs that died (worker killed, machine gone) and takes the
  mailbox with a compare-and-set on ``mail_accounts.running_run_id``, so two
  workers never scan the same mailbox;
- an unchanged folder costs one IMAP round trip (STATUS);
- new mail is fetched oldest first, in chunks of ``batch_size`` messages (and
  a bounded number of bytes), within the scanner's ``max_per_run`` budget
  shared by its folders; bodies are fetched with ``BODY.PEEK`` in a folder
  opened read-only, so no flag ever changes;
- each chunk is parsed, filtered and stored, and the folder's UIDVALIDITY and
  last UID and the run's counters are written in the same transaction, so a
  crash loses nothing and the next run repeats nothing.

A scanner without the *Create email* action stores nothing: its messages are
only counted as downloaded and its folders still advance (so switching the
action on later starts from new mail, not from the mailbox's beginning).
"""

from __future__ import annotations

import fcntl
import gc
import imaplib
import logging
import os
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict
from datetime import timedelta

from flask import current_app
from redis.exceptions import RedisError
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from app.connect import credentials, imap
from app.connect.errors import CredentialError, MailConnectError
from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_location
from app.models import IgnoreFilter, MailAccount, MailSettings, ScanFolder, ScanRun
from app.models.base import utcnow
from app.scanner import filters, parse, plan
from app.scanner.types import FilterRule, FolderState, RunCounters
from app.services import imap_fetch, mail_store
from app.services.imap_fetch import ImapReadError

logger = logging.getLogger(__name__)

RUN_DIED = "The worker stopped without finishing (killed or crashed)."
RUN_UNRECORDED = ("The database was unavailable when the run ended, so its end could not be recorded. "
                  "What was stored before is kept.")
# Fetch chunks are also bounded in bytes, so a batch of big messages cannot exhaust memory.
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
# The next chunk is fetched while the current one is stored only when it is at most this big.
READ_AHEAD_MAX_BYTES = 8 * 1024 * 1024
# The run keeps at most this many error details (the count is always exact).
MAX_ERROR_DETAILS = 1000
# Failures worth retrying a little later (the server or the network), as opposed to a wrong password.
RETRYABLE_KINDS = frozenset({"dns", "refused", "timeout", "protocol"})
# A run on another host whose RQ job Redis does not know is taken for dead only once its heartbeat (written
# every batch) is this old: a Redis restart without persistence forgets the jobs of runs still working.
RQ_GONE_GRACE = timedelta(minutes=2)

_runs = ScanRun.__table__
_accounts = MailAccount.__table__
_folders = ScanFolder.__table__

# Progress of scans running in this process (inline mode has no job meta to read it from).
_local_progress: dict[int, dict] = {}
# Runs of this process whose end could not be written (database down): dead although this process lives on,
# so the next run here closes them instead of being refused as "already running" until the run timeout.
_unrecorded: set[tuple[str, int]] = set()  # (database URL, run id): ids are per database


def _unrecorded_key(run_id: int) -> tuple[str, int]:
    return (str(db.engine.url), run_id)
_local_lock = threading.Lock()


class ScanError(Exception):
    """A scan cannot be started or changed as asked; ``str()`` is for people."""


class ScanAlreadyRunning(ScanError):
    """Another run holds the mailbox; nothing was changed."""

    def __init__(self, account_id: int, run_id: int | None) -> None:
        super().__init__(f"A scan of this mailbox is already running (run {run_id}); "
                         "wait for it to end or stop it from the download history.")
        self.account_id = account_id
        self.run_id = run_id


class _Stop(Exception):
    """Ends the run early: stopped by a person, or the run was closed by someone else."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Fail(Exception):
    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


def runner_id() -> str:
    """``host:pid`` of this process, recorded on the runs it starts."""
    return f"{socket.gethostname()}:{os.getpid()}"


# ----------------------------------------------------------------- dead runs


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


def close_dead_runs(account_id: int | None = None, *, current_job_id: str | None = None) -> int:
    """Close runs that died without finishing as failed, and free their mailboxes; returns how many.

    A run is dead when its heartbeat is older than the run timeout, when the
    process that ran it on this host is gone, or when its RQ job is no longer
    running on a live worker and its heartbeat is older than ``RQ_GONE_GRACE``
    (or is the job now starting again).
    """
    settings = MailSettings.get()
    now = utcnow()
    limit = now - timedelta(minutes=settings.run_timeout_minutes or 30)
    query = select(ScanRun.id, ScanRun.heartbeat_at, ScanRun.started_at, ScanRun.runner, ScanRun.job_id) \
        .where(ScanRun.status == "running")
    if account_id is not None:
        query = query.where(ScanRun.account_id == account_id)
    dead = []
    for run_id, heartbeat, started, runner, job_id in db.session.execute(query).all():
        if (heartbeat or started) < limit or _runner_gone(runner) or _unrecorded_key(run_id) in _unrecorded:
            dead.append(run_id)
        elif job_id and current_job_id and job_id == current_job_id and runner != runner_id():
            dead.append(run_id)
        elif job_id and not (runner or "").startswith(socket.gethostname() + ":") \
                and (heartbeat or started) < now - RQ_GONE_GRACE and _rq_job_gone(job_id):
            dead.append(run_id)
    closed = 0
    for run_id in dead:
        reason = RUN_UNRECORDED if _unrecorded_key(run_id) in _unrecorded else RUN_DIED
        closed += db.session.execute(
            update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
            .values(status="failed", finished_at=now, message=reason)).rowcount
        db.session.execute(update(_accounts).where(_accounts.c.running_run_id == run_id)
                           .values(last_run_status="failed", last_error=reason))
    # Free every mailbox held by a run that is not running any more (dead, or a release that was lost).
    # Looked up first, so that the usual case (nothing to free) writes nothing.
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
    db.session.commit()
    _unrecorded.difference_update(_unrecorded_key(run_id) for run_id in dead)
    if closed:
        logger.warning("closed %d dead scan run(s)", closed)
    return closed


# ----------------------------------------------------------------- the run


def _acquire(account: MailAccount, trigger: str, job_id: str | None) -> ScanRun:
    """Create the run and take the mailbox with a compare-and-set, in one transaction."""
    if account.running_run_id is not None:
        raise ScanAlreadyRunning(account.id, account.running_run_id)
    now = utcnow()
    run = ScanRun(account_id=account.id, status="running", trigger=trigger, job_id=job_id,
                  runner=runner_id(), started_at=now, heartbeat_at=now, error_details="[]")
    db.session.add(run)
    db.session.flush()
    taken = db.session.execute(
        update(_accounts).where(_accounts.c.id == account.id, _accounts.c.running_run_id.is_(None))
        .values(running_run_id=run.id)).rowcount
    if taken != 1:
        db.session.rollback()
        holder = db.session.scalar(select(MailAccount.running_run_id).where(MailAccount.id == account.id))
        raise ScanAlreadyRunning(account.id, holder)
    db.session.commit()
    return run


def _compiled_rules(account_id: int) -> tuple[list, list[str]]:
    """The enabled global and per-mailbox ignore filters, compiled; bad ones skipped and named."""
    rows = db.session.scalars(select(IgnoreFilter).where(
        IgnoreFilter.enabled.is_(True),
        (IgnoreFilter.account_id.is_(None)) | (IgnoreFilter.account_id == account_id))
        .order_by(IgnoreFilter.id)).all()
    compiled, problems = [], []
    for row in rows:
        rule = FilterRule(id=row.id, field=row.field, match=row.match, value=row.value, stops=row.stops,
                          header_name=row.header_name)
        try:
            compiled.extend(filters.compile_rules([rule]))
        except filters.FilterError as exc:
            problems.append(str(exc))
    return compiled, problems


def run_scan(account_id: int, *, trigger: str = "manual", job_id: str | None = None, progress=None) -> ScanRun:
    """Scan one mailbox now, in this process; returns the finished run.

    Raises ``ScanAlreadyRunning`` (changing nothing) when another live run
    holds the mailbox, and ``ScanError`` for an unknown scanner. Every other
    failure ends as a failed run with a readable ``message``; the returned run
    then carries ``failure_kind`` (a ``MailConnectError`` kind, or None) so the
    job can retry connection problems.
    """
    account = db.session.get(MailAccount, account_id)
    if account is None:
        raise ScanError(f"There is no scanner with id {account_id}.")
    close_dead_runs(account_id, current_job_id=job_id)
    db.session.refresh(account)
    run = _acquire(account, trigger, job_id)
    # The id is read once, here: after the database failed mid-run, touching the (expired) ORM
    # object would raise again (PendingRollbackError) instead of recording the failed run.
    run_id = run.id
    totals = RunCounters()
    status, message, kind = "done", None, None
    try:
        with _scan_runtime():
            _scan(run_id, account, totals, progress)
    except _Stop as stop:
        if stop.status == "closed":
            # Another process closed this run as dead and may be scanning now: leave its record alone.
            db.session.rollback()
            logger.warning("scan run %s of account %s was closed by another process", run_id, account_id)
            return _result(run_id, None)
        status, message = stop.status, stop.message
    except _Fail as fail:
        status, message, kind = "failed", fail.message, fail.kind
    except BaseException as exc:
        status, message = "failed", _unexpected(exc)
        logger.exception("scan run %s of account %s failed", run_id, account_id)
        _finish(run_id, account_id, totals, status, message)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt / SystemExit: recorded, then let the process stop
        return _result(run_id, None)
    _finish(run_id, account_id, totals, status, message)
    return _result(run_id, kind)


@contextmanager
def _scan_runtime():
    """Interpreter settings for the length of a scan, put back afterwards.

    - The objects that existed before the scan are frozen out of the garbage collector's
      passes, and young passes are rarer. A scan allocates heavily (every message becomes many
      small objects), and each full pass walked everything the process holds: the app,
      SQLAlchemy, the imported modules. Measured (issue 7): 4 full passes of about 66 ms and
      ~500 young ones in a 4.4 s scan of 10,000 messages, 8 % of the run. Frozen objects are
      only skipped, never freed while frozen, and are handed back when the scan ends.
    - The GIL switch interval is 1 ms instead of 5. The store thread releases the GIL around
      every database call, and the read-ahead thread, busy parsing, then kept it for up to the
      whole interval each time: a batch's writes took 75-96 ms instead of 35 ms, and on SQLite
      the other workers wait for those writes to end.
    """
    # Scans may overlap in threads of one process (the web app's inline queue, tests): the first
    # one in changes the settings, the last one out puts back what was there before any of them.
    with _runtime_lock:
        if not _runtime_saved:
            _runtime_saved.append((gc.get_threshold(), sys.getswitchinterval()))
            thresholds, interval = _runtime_saved[0]
            gc.freeze()
            gc.set_threshold(max(thresholds[0], 20_000), *thresholds[1:])
            sys.setswitchinterval(min(interval, 0.001))
        _runtime_users[0] += 1
    try:
        yield
    finally:
        with _runtime_lock:
            _runtime_users[0] -= 1
            if not _runtime_users[0]:
                thresholds, interval = _runtime_saved.pop()
                sys.setswitchinterval(interval)
                gc.set_threshold(*thresholds)
                gc.unfreeze()


_runtime_lock = threading.Lock()
_runtime_saved: list[tuple[tuple[int, ...], float]] = []  # the settings before the first running scan
_runtime_users = [0]  # scans of this process running now


def _result(run_id: int, kind: str | None) -> ScanRun:
    run = db.session.get(ScanRun, run_id)
    run.failure_kind = kind  # not a column: tells the job whether a retry may help
    with _local_lock:
        _local_progress.pop(run.account_id, None)
    return run


def _unexpected(exc: BaseException) -> str:
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


def _finish(run_id: int, account_id: int, totals: RunCounters, status: str, message: str | None) -> None:
    """Record how the run ended and free the mailbox."""
    try:
        db.session.rollback()
        if status == "done" and totals.errors:
            status = "partial"
        if message is None:
            message = _summary(totals, status)
        now = utcnow()
        db.session.execute(update(_runs).where(_runs.c.id == run_id).values(
            status=status, finished_at=now, message=message, **_counter_values(totals)))
        values = {"last_run_at": now, "last_run_status": status,
                  "last_error": message if status in ("failed", "partial") else None}
        if status in ("done", "partial"):
            values["last_success_at"] = now
        db.session.execute(update(_accounts).where(_accounts.c.id == account_id).values(**values))
        db.session.execute(update(_accounts).where(_accounts.c.id == account_id,
                                                   _accounts.c.running_run_id == run_id)
                           .values(running_run_id=None))
        db.session.commit()
    except SQLAlchemyError:
        # The database is gone: the run stays "running" until the next run closes it as dead.
        db.session.rollback()
        _unrecorded.add(_unrecorded_key(run_id))
        logger.exception("could not record the end of scan run %s", run_id)


def _summary(t: RunCounters, status: str) -> str:
    text = (f"Downloaded {t.downloaded}, stored {t.created} new e-mail(s), {t.bound} bound, "
            f"{t.tickets_created} ticket(s) created, {t.tickets_reopened} reopened, {t.ignored} ignored, "
            f"{t.duplicates} already stored.")
    if t.errors:
        text += f" {t.errors} message(s) could not be handled: see the errors."
    return text


def _counter_values(t: RunCounters) -> dict:
    return {"downloaded": t.downloaded, "created": t.created, "bound": t.bound,
            "tickets_created": t.tickets_created, "tickets_reopened": t.tickets_reopened,
            "ignored": t.ignored, "duplicates": t.duplicates, "errors": t.errors,
            "error_details": mail_store.error_details_json(t.error_details[:MAX_ERROR_DETAILS])}


def _merge(totals: RunCounters, delta: RunCounters) -> None:
    for name, value in asdict(delta).items():
        if name == "error_details":
            totals.error_details.extend(value)
        else:
            setattr(totals, name, getattr(totals, name) + value)


def _login(account: MailAccount, settings: MailSettings):
    """Log in, keeping the scanner's health: failures counted and blocked, success unblocks."""
    try:
        secret = credentials.login_secret(account)
        box = imap.open_imap(account.server, account.login, secret)
    except MailConnectError as exc:
        if exc.kind == "auth":
            account.login_failures = (account.login_failures or 0) + 1
            limit = settings.block_after_failures or 0
            if limit and account.login_failures >= limit and account.health != "blocked":
                account.health = "blocked"
                account.blocked_reason = (f"Blocked after {account.login_failures} failed logins in a row: {exc} "
                                          "Correct the password, then use Test login to unblock it.")
            if (account.server.auth_method or "password") == "oauth2":
                # OAuth: the mail server refused our access token (revoked before it expired). Drop
                # it, so the next run asks the provider for a new one (or learns the grant is gone).
                account.oauth_access_token_enc, account.oauth_expires_at = None, None
        db.session.commit()
        raise _Fail(f"Could not log in to the mailbox: {exc}", exc.kind) from None
    except CredentialError as exc:  # an undecryptable secret, or an OAuth token that cannot be refreshed
        # An unreachable OAuth provider is retried like an unreachable server; a revoked grant ("auth")
        # is not (the scanner's health is then "reconnect").
        raise _Fail(f"Could not log in to the mailbox: {exc}", exc.kind) from None
    if account.login_failures or account.health == "blocked":
        account.login_failures = 0
        if account.health == "blocked":
            account.health = "active"
            account.blocked_reason = None
        db.session.commit()
    return box


def _scan(run_id: int, account: MailAccount, totals: RunCounters, progress) -> None:
    settings = MailSettings.get()
    ctx = mail_store.load_context(account, settings)
    compiled, problems = _compiled_rules(account.id)
    for problem in problems:
        logger.warning("ignore filter skipped for account %s: %s", account.id, problem)
    folders = [(f.id, f.name, f.direction, f.uidvalidity, f.last_uid or 0) for f in account.folders]
    batch_size = max(1, settings.batch_size or 200)
    budget = settings.max_per_run if settings.max_per_run and settings.max_per_run > 0 else 10**9
    max_bytes = int(current_app.config.get("MAX_MESSAGE_BYTES") or 25 * 1024 * 1024)
    batch_bytes = int(current_app.config.get("SCAN_BATCH_BYTES") or DEFAULT_BATCH_BYTES)
    account_id = account.id
    db.session.commit()  # nothing held open while we talk to the server

    box = _login(account, settings)
    client = box.client
    state = {"total": 0}

    def report(folder: str) -> None:
        info = {"run_id": run_id, "folder": folder, "downloaded": totals.downloaded, "total": state["total"],
                "created": totals.created, "errors": totals.errors}
        with _local_lock:
            _local_progress[account_id] = info
        if progress is not None:
            try:
                progress(dict(info))
            except Exception:  # progress is a courtesy (Redis may be restarting): never fail the scan for it
                logger.warning("progress report failed for run %s", run_id, exc_info=True)

    try:
        # One STATUS per folder: an unchanged mailbox costs nothing more.
        plans = []
        for folder_id, name, direction, uidvalidity, last_uid in folders:
            try:
                status = imap_fetch.folder_status(client, name)
            except imap_fetch.FolderMissing as exc:
                totals.add_error(name, None, str(exc))
                continue
            fplan = plan.plan_folder(FolderState(name, direction, uidvalidity, last_uid), status)
            if fplan.reset:
                logger.info("folder %s of account %s was renumbered (UIDVALIDITY %s → %s): rescanning",
                            name, account_id, uidvalidity, fplan.uidvalidity)
            if fplan.reset or uidvalidity is None:
                # Remember the new numbering now; dedupe by Message-ID keeps the rescan from storing twice.
                db.session.execute(update(_folders).where(_folders.c.id == folder_id)
                                   .values(uidvalidity=fplan.uidvalidity, last_uid=fplan.after_uid))
            plans.append((folder_id, fplan, status))
            if fplan.has_new:
                state["total"] += max(0, min(status.messages, status.uidnext - 1 - fplan.after_uid)
                                      if status.uidnext > 0 else status.messages)
        state["total"] = min(state["total"], budget)
        if totals.errors or any(p.reset or p.has_new for _, p, _ in plans):
            _save_progress(run_id, totals)  # folder errors and renumbering are kept even if the run dies now
        db.session.commit()
        report("")

        for folder_id, fplan, _status in plans:
            if not fplan.has_new:
                continue
            if budget <= 0:
                break
            _check_stop(run_id)
            imap_fetch.examine(client, fplan.name)
            sizes = imap_fetch.list_sizes(client, fplan.after_uid)
            uids = plan.take_budget(list(sizes), fplan.after_uid, budget)
            budget -= len(uids)
            chunks = list(imap_fetch.byte_bounded_chunks(uids, sizes, batch_size, batch_bytes, max_bytes))
            # Read-ahead (issue 7): while one chunk is stored, the next one is fetched and parsed in a
            # helper thread; storing mostly waits on the database and fetching on Dovecot, and both
            # waits release the GIL. Only small chunks are read ahead, so memory stays bounded by
            # one batch plus READ_AHEAD_MAX_BYTES. The thread is the only user of the IMAP
            # connection while it runs, and leaving the ``with`` waits for it (before the logout).
            # On a SQLite file the reader also pauses while a batch holds the writer's turn, so that
            # the turn, which other workers wait for, is not stretched by sharing the GIL.
            writes_done = threading.Event()
            writes_done.set()
            with ThreadPoolExecutor(1, thread_name_prefix="scan-read-ahead") as pool:
                ahead = None
                for index, chunk in enumerate(chunks):
                    _check_stop(run_id)
                    read = ahead.result() if ahead is not None else \
                        _read_chunk(client, account_id, fplan, chunk, sizes, max_bytes, compiled)
                    ahead = None
                    following = chunks[index + 1] if index + 1 < len(chunks) else None
                    if following is not None and \
                            _chunk_bytes(following, sizes, max_bytes) <= READ_AHEAD_MAX_BYTES:
                        ahead = pool.submit(_read_chunk, client, account_id, fplan, following, sizes, max_bytes,
                                            compiled, writes_done)
                    _store_chunk(run_id, ctx, folder_id, fplan, chunk, read, totals, writes_done)
                    report(fplan.name)
    except (imaplib.IMAP4.abort, imaplib.IMAP4.error, OSError) as exc:
        raise _Fail(f"The connection to the mail server broke during the scan ({exc}). What was stored so far "
                    "is kept; the next run continues from there.", "protocol") from None
    except ImapReadError as exc:
        raise _Fail(str(exc), "protocol") from None
    finally:
        try:
            box.logout()
        except Exception:  # the connection may already be gone; nothing to clean up then
            pass


def _check_stop(run_id: int) -> None:
    """Between batches: a person asked to stop, or the run was closed by someone else."""
    row = db.session.execute(select(ScanRun.status, ScanRun.stop_requested, ScanRun.stopped_by_id)
                             .where(ScanRun.id == run_id)).one()
    db.session.commit()
    if row.status != "running":
        raise _Stop("closed", "The run was closed while it was still working (it was taken for dead).")
    if row.stop_requested:
        raise _Stop("stopped", "Stopped on request; what was stored so far is kept.")


def _save_progress(run_id: int, totals: RunCounters) -> None:
    """The run's counters and heartbeat, guarded: 0 rows means the run was closed as dead meanwhile."""
    updated = db.session.execute(
        update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
        .values(heartbeat_at=utcnow(), **_counter_values(totals))).rowcount
    if updated != 1:
        db.session.rollback()
        raise _Stop("closed", "The run was closed while it was still working (it was taken for dead).")


def _chunk_bytes(chunk: list[int], sizes: dict[int, int], max_bytes: int) -> int:
    """About how many bytes fetching ``chunk`` brings (messages over the limit: their header only)."""
    return sum(64 * 1024 if sizes.get(u, 0) > max_bytes else sizes.get(u, 0) for u in chunk)


def _read_chunk(client, account_id, fplan, chunk, sizes, max_bytes, compiled,
                writes_done: threading.Event | None = None) -> tuple[list, RunCounters]:
    """Fetch, parse and filter one chunk (no database): the batch items and a counter of what was read.

    Runs in the read-ahead thread too, so it touches neither the database nor
    the Flask app; IMAP errors propagate to the caller of ``Future.result()``.
    """
    raws, missing = imap_fetch.fetch_chunk(client, fplan.name, fplan.uidvalidity, chunk, sizes, max_bytes)
    base = RunCounters(downloaded=len(raws))
    for uid in missing:
        base.add_error(fplan.name, uid, "The message was deleted on the server before it could be read.")
    items = []
    for raw in raws:
        # Operators must see when the size limit cut a message down to its header (issue 6).
        if raw.truncated:
            logger.warning("message %s/%s uid %s is %s bytes, over MAX_MESSAGE_BYTES=%s: "
                           "only its header is stored", account_id, fplan.name, raw.uid, raw.size, max_bytes)
        if writes_done is not None:
            writes_done.wait()
        try:
            parsed = parse.parse_message(raw)
            verdict = filters.evaluate(parsed, compiled)
            items.append(mail_store.BatchItem(parsed, fplan.direction, verdict))
        except Exception as exc:  # one bad message never stops the run
            logger.warning("message %s/%s uid %s could not be parsed: %s", account_id, fplan.name, raw.uid,
                           exc, exc_info=True)
            base.add_error(fplan.name, raw.uid, f"The message could not be read: {type(exc).__name__}: {exc}")
    return items, base


def _store_chunk(run_id, ctx, folder_id, fplan, chunk, read, totals, writes_done=None) -> None:
    """Store one read chunk; advance the folder and the counters in the same commit."""
    items, base = read
    last_uid = max(chunk)
    turn = _WriterTurn(writes_done)
    try:
        stored = RunCounters()
        mail_store.store_batch(ctx, items, stored, before_writes=turn.take)
        turn.take()  # nothing stored (all duplicates or ignored): the folder and counters still are
        _commit_chunk(run_id, folder_id, fplan, last_uid, totals, base, stored)
    except OperationalError:
        raise  # the database itself is unavailable: the run fails, the next one resumes here
    except Exception as exc:
        # A uniqueness constraint caught what the key lookup missed (another worker stored the same
        # message meanwhile), or one message's data upset the database or a step: store the batch
        # again one message at a time, so only the culprit is reported and the rest is stored.
        db.session.rollback()
        if not isinstance(exc, IntegrityError):
            logger.warning("batch store failed for account %s folder %s (%s); retrying one by one",
                           ctx.account_id, fplan.name, exc, exc_info=True)
        turn.take()
        stored = _store_one_by_one(ctx, fplan, items, base)
        _commit_chunk(run_id, folder_id, fplan, last_uid, totals, base, stored)
    finally:
        turn.release()
    _merge(totals, base)
    _merge(totals, stored)


class _WriterTurn:
    """A batch's turn as the writer of a SQLite database file, taken with a kernel file lock.

    SQLite lets one writer in at a time and makes the others poll: a busy writer sleeps 1, 2, 5,
    10, 15, 20… ms between tries, so it kept sleeping after the lock was free. Measured (issue 7):
    two scans on two SQLite files ran 2.0x one scan, on one shared file 1.4x. Waiting on
    ``flock`` instead wakes the next worker the moment the lock is released, and the waiting
    worker's read-ahead thread goes on fetching and parsing meanwhile. The lock covers only a
    batch's writes and commit; every other write still relies on SQLite's busy timeout, and the
    kernel drops the lock of a process that dies. PostgreSQL and in-memory SQLite take no lock.
    """

    def __init__(self, writes_done: threading.Event | None = None) -> None:
        self._fd: int | None = None
        self._writes_done = writes_done

    def take(self) -> None:
        """Wait for the turn (once; later calls do nothing)."""
        if self._fd is not None:
            return
        path = _writer_lock_path()
        if path is None:
            self._fd = -1
            return
        try:
            # Read-only is enough for flock, and the umask decides who else may open the file:
            # a worker running as another user than the first scan must not be locked out.
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            logger.warning("cannot open the writer lock %s (%s): batches wait on SQLite's busy timeout "
                           "instead", path, exc)
            self._fd = -1
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # e.g. a file system without locks: no turns, but no failed scan either
            os.close(fd)
            logger.warning("cannot lock %s (%s): batches wait on SQLite's busy timeout instead", path, exc)
            self._fd = -1
            return
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if self._writes_done is not None:
            self._writes_done.clear()

    def release(self) -> None:
        """Give the turn back (after the commit or the rollback)."""
        fd, self._fd = self._fd, None
        if fd is not None and fd >= 0:
            os.close(fd)  # closing the only descriptor of this open file releases its flock
            if self._writes_done is not None:
                self._writes_done.set()


def _writer_lock_path() -> str | None:
    """The lock file beside a SQLite database file, or None for other databases."""
    url = db.engine.url
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or \
            url.database.startswith("file:"):
        return None
    return url.database + "-writer.lock"


def _commit_chunk(run_id, folder_id, fplan, last_uid, totals, base, stored) -> None:
    """Advance the folder and save the counters with the chunk's rows, then commit."""
    db.session.execute(update(_folders).where(_folders.c.id == folder_id)
                       .values(uidvalidity=fplan.uidvalidity, last_uid=last_uid))
    trial = RunCounters()
    for part in (totals, base, stored):
        _merge(trial, part)
    _save_progress(run_id, trial)
    db.session.commit()


def _store_one_by_one(ctx, fplan, items, base: RunCounters) -> RunCounters:
    """Each message in its own transaction: duplicates counted, a failing one reported by UID."""
    stored = RunCounters()
    for item in items:
        one = RunCounters()
        try:
            mail_store.store_batch(ctx, [item], one)
            db.session.commit()
        except OperationalError:
            raise
        except IntegrityError:
            db.session.rollback()
            one = RunCounters(duplicates=1)
        except Exception as exc:
            db.session.rollback()
            one = RunCounters()
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            base.add_error(fplan.name, item.parsed.raw.uid,
                           f"The message could not be stored: {type(exc).__name__}: {reason}")
        _merge(stored, one)
    return stored


# ----------------------------------------------------------------- queue, progress, stop


def enqueue_scan(account_id: int, *, trigger: str = "manual") -> str:
    """Queue a scan of one mailbox (job id ``scan-<id>``, never twice at once); returns the job id.

    With ``QUEUE_MODE == "inline"`` the scan runs here and now, in this process.
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
        return jobs.enqueue_scan_job(current_app._get_current_object(), account_id, trigger)
    except RedisError as exc:
        where = redis_location(current_app.config.get("REDIS_URL"))
        raise ScanError(f"The scan queue (Redis at {where}) is not reachable ({exc}), so the scan was not "
                        "queued. Start Redis and a worker (`python worker.py`), or run the scan from the "
                        "command line with `flask --app wsgi scanners run ID`.") from exc


def scan_progress(account_id: int) -> dict:
    """Where a scanner is: idle, queued or running, with downloaded / total when running."""
    run = db.session.scalar(select(ScanRun).where(ScanRun.account_id == account_id, ScanRun.status == "running")
                            .order_by(ScanRun.started_at.desc()).limit(1))
    meta: dict = {}
    queued = False
    if current_app.config.get("QUEUE_MODE") == "redis":
        try:
            meta, queued = jobs.job_progress(current_app._get_current_object(), account_id)
        except Exception:  # Redis down: the database still knows about running scans
            logger.debug("no job progress for account %s", account_id, exc_info=True)
    with _local_lock:
        local = dict(_local_progress.get(account_id) or {})
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
    from app.services import audit

    updated = db.session.execute(
        update(_runs).where(_runs.c.id == run_id, _runs.c.status == "running")
        .values(stop_requested=True, stopped_by_id=user_id)).rowcount
    if updated != 1:
        db.session.rollback()
        raise ScanError("This scan has already ended; there is nothing to stop.")
    audit.record("scan.stop", f"run {run_id}")
    db.session.commit()
