"""The folder loop of a run: plan every folder with one STATUS, then read and store the new mail.

- An unchanged folder costs one IMAP round trip (STATUS): ``app.scanner.plan.plan_folder``
  compares it with what the folder's row remembers.
- A renumbered folder (UIDVALIDITY changed) is read again from the start; dedupe by Message-ID
  keeps what is stored from being stored twice.
- New mail is read oldest first, in chunks of ``batch_size`` messages and about ``batch_bytes``
  bytes, within the run's budget of messages shared by its folders. The folder is opened
  read-only (EXAMINE) and bodies are fetched with ``BODY.PEEK``, so no flag ever changes.
- Between chunks the run checks whether it was asked to stop.
"""

from __future__ import annotations

import imaplib
import logging

from sqlalchemy import update

from app.extensions import db
from app.models import ScanFolder
from app.scanner import plan, spam
from app.scanner.types import FolderStatus, RunCounters
from app.scanning import imap_reads
from app.scanning.chunks import ReadAhead, store_chunk
from app.scanning.progress import Reporter, check_stop, save_progress
from app.scanning.setup import FolderScan, RunSetup

logger = logging.getLogger(__name__)

_folders = ScanFolder.__table__


def scan_folders(client: imaplib.IMAP4, setup: RunSetup, totals: RunCounters, report: Reporter) -> None:
    """Plan every folder of the scanner, then read and store the new mail of each, within the budget."""
    folders = plan_folders(client, setup, totals, report)
    budget = setup.budget
    for folder in folders:
        if not folder.plan.has_new:
            continue
        if budget <= 0:
            break
        check_stop(setup.run_id)
        budget -= scan_folder(client, setup, folder, budget, totals, report)


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
        folders.append(FolderScan(folder_id, fplan))
        if fplan.has_new:
            total += _expected(status, fplan.after_uid)
    report.total = min(total, setup.budget)
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
    """Read and store the new mail of one folder, at most ``budget`` messages; returns how many were taken."""
    name = folder.plan.name
    imap_reads.examine(client, name)
    folder.junk = spam.is_junk_folder(name, imap_reads.folder_attributes(client, name))
    folder.sizes = imap_reads.list_sizes(client, folder.plan.after_uid)
    listed = list(folder.sizes)
    if setup.since is not None and listed:
        # Only mail received since the day: the older messages are passed over, never fetched.
        wanted = imap_reads.search_since(client, folder.plan.after_uid, setup.since)
        listed = [uid for uid in listed if uid in wanted]
    uids = plan.take_budget(listed, folder.plan.after_uid, budget)
    chunks = list(imap_reads.byte_bounded_chunks(uids, folder.sizes, setup.batch_size, setup.batch_bytes,
                                                 setup.max_message_bytes))
    with ReadAhead(client, setup, folder, chunks) as reader:
        for index in range(len(chunks)):
            check_stop(setup.run_id)
            read = reader.read(index)
            store_chunk(setup, folder, read, totals, reader.writes_done)
            report(name)
    if len(listed) <= budget and folder.sizes and max(folder.sizes) > max(uids, default=0):
        # Everything wanted was read: the folder moves past the messages passed over after the last one.
        db.session.execute(update(_folders).where(_folders.c.id == folder.folder_id)
                           .values(uidvalidity=folder.plan.uidvalidity, last_uid=max(folder.sizes)))
        db.session.commit()
    return len(uids)
