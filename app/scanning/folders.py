"""The folder loop of a run: plan every folder with one STATUS, then read and store the new mail.

- An unchanged folder costs one IMAP round trip (STATUS): ``app.scanner.plan.plan_folder``
  compares it with what the folder's row remembers.
- A renumbered folder (UIDVALIDITY changed) is read again from the start; dedupe by Message-ID
  keeps what is stored from being stored twice.
- New mail is read oldest first, in chunks of ``batch_size`` messages and about ``batch_bytes``
  bytes, within the run's budget of messages shared by its folders and its time budget
  (``SCAN_RUN_SECONDS``, checked between chunks once the run has stored something, so every run
  moves on). The folder is opened read-only (EXAMINE) and bodies are fetched with ``BODY.PEEK``,
  so no flag ever changes.
- What the run leaves (its backlog) is counted from STATUS and what it took, written on the
  scanner (``mail_accounts.backlog``) and returned, so the scan job continues a cut-off run.
- Between chunks, and every second while a fetch is slow, the run checks whether it was asked to
  stop (``chunks.ReadAhead``).
"""

from __future__ import annotations

import imaplib
import logging

from sqlalchemy import update

from app.extensions import db
from app.models import MailAccount, ScanFolder
from app.scanner import plan, spam
from app.scanner.types import FolderStatus, RunCounters
from app.scanning import imap_reads
from app.scanning.chunks import ReadAhead, store_chunk
from app.scanning.progress import Reporter, check_stop, save_progress
from app.scanning.setup import NO_BUDGET, FolderScan, RunSetup

logger = logging.getLogger(__name__)

_folders = ScanFolder.__table__
_accounts = MailAccount.__table__


def scan_folders(client: imaplib.IMAP4, setup: RunSetup, totals: RunCounters, report: Reporter) -> int:
    """Plan every folder of the scanner, then read and store the new mail of each, within the budget.

    Returns about how many new messages the run left on the server (its backlog): more than 0 only
    when it stopped at its budget of messages or time, never for what it could not read.
    """
    folders = plan_folders(client, setup, totals, report)
    budget = setup.budget
    taken = 0
    for folder in folders:
        if not folder.plan.has_new:
            continue
        folder.remaining = folder.expected  # until it is read
        if budget <= 0 or (taken and setup.past_deadline()):
            continue
        check_stop(setup.run_id)
        got = scan_folder(client, setup, folder, budget, totals, report)
        budget -= got
        taken += got
    return sum(f.remaining for f in folders)


def plan_folders(client: imaplib.IMAP4, setup: RunSetup, totals: RunCounters, report: Reporter) -> list[FolderScan]:
    """One STATUS per folder; renumbered and first-seen folders remember their new numbering now.

    A folder the server does not have is an error of the run, not a failure. Sets
    ``report.total`` to the number of messages the run expects to read, and commits.
    """
    folders: list[FolderScan] = []
    total = 0
    for folder_id, state in setup.folders:
        try:
            status = imap_reads.folder_status(client, state.name)
        except imap_reads.FolderMissing as exc:
            totals.add_error(state.name, None, str(exc))
            continue
        fplan = plan.plan_folder(state, status, setup.archive)
        if fplan.reset:
            logger.info("folder %s of account %s was renumbered (UIDVALIDITY %s → %s): rescanning",
                        state.name, setup.account_id, state.uidvalidity, fplan.uidvalidity)
        if fplan.reset or state.uidvalidity is None:
            # Remember the new numbering now; dedupe by Message-ID keeps the rescan from storing twice.
            db.session.execute(update(_folders).where(_folders.c.id == folder_id)
                               .values(uidvalidity=fplan.uidvalidity, last_uid=fplan.after_uid))
        if fplan.archive_below is not None and fplan.archive_below != state.archive_below:
            # The archive import begins: what is in the folder now is archive, in this run and the next.
            db.session.execute(update(_folders).where(_folders.c.id == folder_id)
                               .values(archive_below_uid=fplan.archive_below))
        expected = _expected(status, fplan.after_uid) if fplan.has_new else 0
        folders.append(FolderScan(folder_id, fplan, uidnext=status.uidnext, expected=expected))
        total += expected
    report.total = min(total, setup.budget)
    report.backlog = total
    if total != setup.backlog_before:
        db.session.execute(update(_accounts).where(_accounts.c.id == setup.account_id).values(backlog=total))
    if totals.errors or any(f.plan.reset or f.plan.has_new or f.plan.archive_below for f in folders):
        save_progress(setup.run_id, totals)  # folder errors and renumbering are kept even if the run dies now
    db.session.commit()
    report("")
    return folders


def _expected(status: FolderStatus, after_uid: int) -> int:
    """About how many new messages a folder holds (its UIDs may have gaps: never more than it holds)."""
    if status.uidnext > 0:
        return max(0, min(status.messages, status.uidnext - 1 - after_uid))
    return status.messages


def scan_folder(client: imaplib.IMAP4, setup: RunSetup, folder: FolderScan, budget: int,
                totals: RunCounters, report: Reporter) -> int:
    """Read and store the new mail of one folder, at most ``budget`` messages; returns how many were taken.

    With a budget the UIDs are listed a window at a time (``_window_end``); a window with no
    message left (expunged ones leave gaps, or only older mail than the scanner's since-day) still
    moves the folder on. Sets ``folder.remaining``.
    """
    name = folder.plan.name
    imap_reads.examine(client, name)
    folder.junk = spam.is_junk_folder(name, imap_reads.folder_attributes(client, name))
    after, taken, finished = folder.plan.after_uid, 0, False
    while True:
        upto = _window_end(folder, after, budget - taken, setup.budget)
        folder.sizes = imap_reads.list_sizes(client, after, upto)
        listed = _wanted(client, setup, after, list(folder.sizes))
        uids = plan.take_budget(listed, after, budget - taken)
        done = _read_and_store(client, setup, folder, uids, totals, report) if uids else 0
        taken += done
        if done < len(uids):
            break  # the time budget ran out
        if len(uids) == len(listed) and folder.sizes and max(folder.sizes) > max(uids, default=0):
            # Everything wanted was read: the folder moves past the messages passed over after the last one.
            _advance(folder, max(folder.sizes))
        finished = upto is None and len(uids) == len(listed)
        if finished or taken >= budget:
            break
        if not uids:
            _advance(folder, upto)  # nothing is left to read in the window: never list it again
        after = max(uids[-1] if uids else 0, upto or 0)
        if setup.past_deadline():
            break
    folder.remaining = 0 if finished else max(1, folder.expected - taken, len(listed) - done)
    return taken


def _wanted(client: imaplib.IMAP4, setup: RunSetup, after: int, listed: list[int]) -> list[int]:
    """The listed UIDs to read: all of them, or only mail received since the scanner's day."""
    if setup.since is None or not listed:
        return listed
    # Only mail received since the day: the older messages are passed over, never fetched.
    wanted = imap_reads.search_since(client, after, setup.since)
    return [uid for uid in listed if uid in wanted]


def _window_end(folder: FolderScan, after: int, budget: int, run_budget: int) -> int | None:
    """The last UID to list now: ``budget`` UIDs on, or None (to the end) when that passes UIDNEXT."""
    if folder.uidnext <= 0 or run_budget >= NO_BUDGET or after + budget >= folder.uidnext - 1:
        return None
    return after + budget


def _advance(folder: FolderScan, upto: int | None) -> None:
    """The folder's last UID moves to ``upto``: no message up to it is left to read."""
    if upto is not None:
        db.session.execute(update(_folders).where(_folders.c.id == folder.folder_id)
                           .values(uidvalidity=folder.plan.uidvalidity, last_uid=upto))
        db.session.commit()


def _read_and_store(client: imaplib.IMAP4, setup: RunSetup, folder: FolderScan, uids: list[int],
                    totals: RunCounters, report: Reporter) -> int:
    """Read and store ``uids`` chunk by chunk; returns how many were stored before the time budget ran out.

    Past the deadline no further chunk is fetched; a chunk already read ahead is still stored.
    """
    chunks = list(imap_reads.byte_bounded_chunks(uids, folder.sizes, setup.batch_size, setup.batch_bytes,
                                                 setup.max_message_bytes))
    stored = 0
    with ReadAhead(client, setup, folder, chunks, lambda: check_stop(setup.run_id)) as reader:
        for index in range(len(chunks)):
            if index and not reader.has_ahead and setup.past_deadline():
                break
            read = reader.read(index)
            store_chunk(setup, folder, read, totals, reader.writes_done)
            stored += len(chunks[index])
            report.backlog = max(0, (report.backlog or 0) - len(chunks[index]))
            report(folder.plan.name)
    return stored
