"""Store one batch of parsed messages: dedupe → lookups → decisions → rows → writes.

The cost of a batch does not depend on its size or on how many records there are: every lookup
is one query for the whole batch (``keys``, ``lookups``), the per-message decisions are pure
(``app.scanner.decide``), and every write is one bulk statement per table, in the dialect's
fastest form (``postgres``, ``sqlite``): new tickets, ticket status updates, e-mails,
attachments, links, and the e-mails' mailbox links (``email_mailboxes``). A message already
stored from another mailbox is not decided again: it gets only its link to this mailbox, and is
counted as "also in" that mailbox (``keys``).

Nothing here commits: the scan advances the folder and the run counters in the same
transaction and commits once, so a batch is stored entirely or not at all.

Actions: without *Create email* nothing is stored (messages are only counted); without *Bind
email* no record links are written, except the link of an e-mail to its ticket (found by number
or reply, or created for it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Table, select

from app.extensions import db
from app.models import Email, EmailAttachment, EmailLink, EmailMailbox, MailAccount, MailSettings, Ticket, User
from app.models.base import utcnow
from app.scanner import decide
from app.scanner.domains import stored_domains
from app.scanner.types import (
    BatchDecisions,
    BatchItem,
    LinkedMessage,
    RunCounters,
    StoreContext,
    TicketPolicy,
)
from app.scanning.store import activity, keys, lookups, postgres, rows, sqlite
from app.scanning.store.dialect import is_postgres
from app.scanning.store.rows import Row


def load_context(account: MailAccount, settings: MailSettings) -> StoreContext:
    """Read the account's actions and the mail configuration once for a run."""
    actions = frozenset(account.action_list)
    logins = db.session.scalars(select(MailAccount.login)).all()
    users = db.session.scalars(select(User.email).where(User.email.is_not(None))).all()
    ours = frozenset(a.strip().lower() for a in [*logins, *users] if a and a.strip())
    domains = frozenset(d.strip().lower().lstrip("@") for d in (settings.internal_domains or "").split(",")
                        if d.strip())
    return StoreContext(
        account_id=account.id,
        assignee_id=account.assignee_id,
        actions=actions,
        search_fields=frozenset(account.search_field_list),
        policy=TicketPolicy(create="create_ticket" in actions, reopen="open_ticket" in actions,
                            closed_policy=settings.closed_ticket_policy or "reopen"),
        loop_limit=settings.loop_max_messages or 0,
        loop_window=timedelta(minutes=settings.loop_window_minutes or 0),
        our_addresses=ours,
        our_domains=domains,
        public_domains=stored_domains(settings.public_domains),
        spam_handling=settings.spam_handling or "store",
    )


def store_batch(ctx: StoreContext, items: list[BatchItem], counters: RunCounters,
                before_writes: Callable[[], None] | None = None) -> None:
    """Store a batch (ignored and duplicate messages counted, not stored); does not commit.

    ``before_writes`` is called once, after the lookups and just before the first write, when
    the batch has something to write (the scan takes its turn as the database's writer there).

    Raises ``sqlalchemy.exc.IntegrityError`` (on PostgreSQL's COPY: the driver's
    ``UniqueViolation``) when a uniqueness constraint catches a duplicate the
    lookup missed (two workers racing, on one mailbox or on two that received the
    same message): the caller rolls back and stores the batch again message by
    message (``app.scanning.chunks.is_conflict``), which then finds and links it.
    """
    keep = [it for it in items if it.verdict.store]
    counters.ignored += len(items) - len(keep)
    if ctx.spam_handling == "ignore":
        clean = [it for it in keep if it.spam is None]
        counters.spam += len(keep) - len(clean)  # counted, not stored
        keep = clean
    if not keep or not ctx.stores:
        return  # without "Create email" nothing is stored: the messages count as downloaded only
    fresh, linked = keys.new_messages(ctx.account_id, keep, counters)
    if not fresh and not linked:
        return
    decided = BatchDecisions([], [], {})
    if fresh:
        undated = utcnow()  # the date of a message without one, for the loop protection
        found = lookups.look_up(ctx, fresh, undated)
        decided = decide.decide_batch(ctx, fresh, found, undated)
        counters.tickets_created += decided.tickets_created
        counters.tickets_reopened += decided.tickets_reopened
        for d in decided.messages:
            if d.held:
                setattr(counters, d.held, getattr(counters, d.held) + 1)
    # The rows are built before the first write: SQLite lets one writer in at a time, from its
    # first write to its commit, so that stretch holds as little Python work as possible.
    now = utcnow()
    email_rows = [rows.email_row(ctx.account_id, d, now) for d in decided.messages]
    if before_writes is not None:
        before_writes()
    _write(ctx, decided, email_rows, counters)
    _write_links(ctx.account_id, decided, email_rows, linked, now)
    # Every message that reached this mailbox, stored now or already stored from another one.
    activity.count_stored(ctx.account_id, len(email_rows) + len(linked), now)


class _Writes(Protocol):
    """The bulk writes of one dialect (the modules ``postgres`` and ``sqlite``)."""

    def bulk_insert(self, table: Table, rows: list[Row]) -> None: ...

    def insert_with_ids(self, table: Table, rows: list[Row], key_col: Any, scope: Any = None) -> dict[str, int]: ...

    def insert_tickets(self, rows: list[Row]) -> list[int]: ...

    def update_many(self, table: Table, column: str, values: Mapping[int, object]) -> None: ...


def _write(ctx: StoreContext, decided: BatchDecisions, email_rows: list[Row], counters: RunCounters) -> None:
    """Tickets first (their ids go into links), then e-mails, attachments, links."""
    writes: _Writes = postgres if is_postgres() else sqlite
    ticket_ids: dict[int, int] = {}
    if decided.new_tickets:
        now = utcnow()
        ids = writes.insert_tickets([rows.ticket_row(t, ctx.account_id, ctx.assignee_id, now)
                                     for t in decided.new_tickets])
        ticket_ids = dict(zip((t.temp_id for t in decided.new_tickets), ids, strict=True))
    if decided.status_changes:
        writes.update_many(Ticket.__table__, "status", decided.status_changes)
    if not email_rows:
        return
    emails = Email.__table__
    # Inserted in the order of their unique identity: two workers storing the same messages from two
    # mailboxes at once then wait for each other in one order (the second fails), never deadlock.
    ids_by_key = writes.insert_with_ids(emails, sorted(email_rows, key=lambda r: r["identity"]),
                                        emails.c.message_key, emails.c.account_id == ctx.account_id)
    email_ids = [ids_by_key[r["message_key"]] for r in email_rows]
    for row, email_id in zip(email_rows, email_ids, strict=True):
        row["id"] = email_id
    counters.created += len(email_ids)
    attachment_rows, link_rows = rows.attachment_and_link_rows(decided.messages, email_ids, ticket_ids)
    counters.bound += sum(1 for d in decided.messages if d.links)
    if attachment_rows:
        writes.bulk_insert(EmailAttachment.__table__, attachment_rows)
    if link_rows:
        writes.bulk_insert(EmailLink.__table__, link_rows)


def _write_links(account_id: int, decided: BatchDecisions, email_rows: list[Row], linked: list[LinkedMessage],
                 now: datetime) -> None:
    """This mailbox's link to each e-mail the batch stored or found stored from another mailbox."""
    link_rows = [rows.mailbox_row(r["id"], account_id, r["message_key"], d.message.item.parsed.raw, now)
                 for d, r in zip(decided.messages, email_rows, strict=True)]
    link_rows += [rows.mailbox_row(m.email_id, account_id, m.key, m.item.parsed.raw, now) for m in linked]
    if link_rows:
        (postgres if is_postgres() else sqlite).bulk_insert(EmailMailbox.__table__, link_rows)
