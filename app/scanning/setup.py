"""What a run knows before it talks to the server, loaded once: ``RunSetup``; and ``FolderScan``.

Everything the folder loop and its reader thread need travels in these two dataclasses, so
the reader thread never touches the database or the Flask app.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import date

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import IgnoreFilter, MailAccount, MailSettings
from app.scanner import filters
from app.scanner.types import FilterRule, FolderPlan, FolderState, StoreContext
from app.scanning.store.batch import load_context

logger = logging.getLogger(__name__)

# Fetch chunks are also bounded in bytes, so a batch of big messages cannot exhaust memory.
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
# A scanner without a limit of messages per run reads everything new.
NO_BUDGET = 10**9


@dataclass(frozen=True)
class AfterStore:
    """What the scanner does on the server with a message once it is stored (``housekeeping``)."""

    action: str = "keep"  # keep / mark_read / move / delete
    folder: str | None = None  # the folder a move goes to

    @property
    def acts(self) -> bool:
        """True when stored messages are acted on at all."""
        return self.action in ("mark_read", "delete") or (self.action == "move" and bool(self.folder))


@dataclass(frozen=True)
class RunSetup:
    """One run's settings and the scanner's configuration, read once at its start."""

    run_id: int
    account_id: int
    store: StoreContext
    rules: list[filters.CompiledRule]  # the enabled ignore filters, compiled
    folders: list[tuple[int, FolderState]]  # (ScanFolder id, what we remember of it), in the scanner's order
    batch_size: int  # messages per fetch chunk (and per stored batch)
    batch_bytes: int  # about this many bytes of message data per fetch chunk
    max_message_bytes: int  # a message over this is stored as its header only
    budget: int  # messages the run may read, over all its folders
    spam_threshold: float = 6.0  # a spam score above this counts as spam
    archive: bool = False  # the scanner imports the mail already there as an archive
    since: date | None = None  # only mail the server received on or after this day is read
    after_store: AfterStore = AfterStore()  # what is done on the server with a stored message
    deadline: float = math.inf  # time.monotonic() after which the run reads no further chunk
    backlog_before: int | None = None  # the scanner's backlog as the previous run left it

    def past_deadline(self) -> bool:
        """True once the run's time budget is spent."""
        return time.monotonic() > self.deadline


@dataclass
class FolderScan:
    """One folder in this run: its plan, and once listed, the size of every new message by UID."""

    folder_id: int
    plan: FolderPlan
    sizes: dict[int, int] = field(default_factory=dict)
    junk: bool = False  # a Junk folder (by its special use or its name): everything in it is spam
    uidnext: int = 0  # the folder's UIDNEXT when the run planned it (0: the server did not say)
    expected: int = 0  # about how many new messages it held then
    remaining: int = 0  # about how many of them this run left for the next one


def load_setup(run_id: int, account: MailAccount, settings: MailSettings, seconds: float | None = None) -> RunSetup:
    """Read the run's setup; ignore filters that do not compile are skipped and logged.

    ``seconds`` is the run's time budget (None: none, the run reads until its budget of messages).
    """
    store = load_context(account, settings)
    rules, problems = compiled_rules(account.id)
    for problem in problems:
        logger.warning("ignore filter skipped for account %s: %s", account.id, problem)
    return RunSetup(
        run_id=run_id,
        account_id=account.id,
        store=store,
        rules=rules,
        folders=[(f.id, FolderState(f.name, f.direction, f.uidvalidity, f.last_uid or 0, f.archive_below_uid))
                 for f in account.folders],
        batch_size=max(1, settings.batch_size or 200),
        batch_bytes=int(current_app.config.get("SCAN_BATCH_BYTES") or DEFAULT_BATCH_BYTES),
        max_message_bytes=int(current_app.config.get("MAX_MESSAGE_BYTES") or DEFAULT_MAX_MESSAGE_BYTES),
        budget=settings.max_per_run if settings.max_per_run and settings.max_per_run > 0 else NO_BUDGET,
        spam_threshold=settings.spam_score_threshold if settings.spam_score_threshold is not None else 6.0,
        archive=bool(account.archive_existing),
        since=account.since_date,
        after_store=after_store_of(account),
        deadline=time.monotonic() + seconds if seconds and seconds > 0 else math.inf,
        backlog_before=account.backlog,
    )


def after_store_of(account: MailAccount) -> AfterStore:
    """The scanner's after-store action; a move without a folder acts on nothing."""
    action = account.after_store or "keep"
    return AfterStore(action, account.after_store_folder if action == "move" else None)


def compiled_rules(account_id: int) -> tuple[list[filters.CompiledRule], list[str]]:
    """The enabled global and per-mailbox ignore filters, compiled; bad ones skipped and named."""
    rows = db.session.scalars(select(IgnoreFilter).where(
        IgnoreFilter.enabled.is_(True),
        (IgnoreFilter.account_id.is_(None)) | (IgnoreFilter.account_id == account_id))
        .order_by(IgnoreFilter.id)).all()
    compiled: list[filters.CompiledRule] = []
    problems: list[str] = []
    for row in rows:
        rule = FilterRule(id=row.id, field=row.field, match=row.match, value=row.value, stops=row.stops,
                          header_name=row.header_name)
        try:
            compiled.extend(filters.compile_rules([rule]))
        except filters.FilterError as exc:
            problems.append(str(exc))
    return compiled, problems
