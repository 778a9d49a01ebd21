"""The batch's queries: each one query for the whole batch, whatever its size.

Every lookup is an ``IN`` probe on an indexed column (``dialect.in_values``):

1. what is stored already: the message keys this mailbox holds, and the e-mails (of any mailbox)
   with the batch's content identities (dedupe and links, in ``keys``);
2. every address in the messages, and every domain of theirs that may bind to an organization (one
   ``UNION ALL`` over contacts, organizations, leads, users and organization domains);
3. the records the parents of replies (In-Reply-To / References) are bound to;
4. the tickets named by number in subjects or reached through a parent;
5. the sender activity in the loop window (for the loop protection).

``look_up`` runs 2-5 for the new messages of a batch and returns them as ``BatchLookups``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import and_, literal, null, or_, select, union_all
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Contact, Email, EmailLink, EmailMailbox, Lead, Organization, OrganizationDomain, Ticket, User
from app.scanner import bind
from app.scanner.domains import domain_key, domains_to_look_up
from app.scanner.types import BatchLookups, NewMessage, RecordRef, StoreContext, TicketInfo
from app.scanning.store.dialect import in_values

NOT_LOOP_KINDS = ("spam", "archived")


def look_up(ctx: StoreContext, messages: list[NewMessage], now: datetime) -> BatchLookups:
    """Everything the decisions of ``messages`` need from the database; ``now`` dates a dateless message."""
    addresses: set[str] = set()
    parents: set[str] = set()
    numbers: set[str] = set()
    senders: set[str] = set()
    dates: list[datetime] = []
    for message in messages:
        it = message.item
        p = it.parsed
        addresses.update(a for a in bind.addresses_to_look_up(p, it.folder_direction) if a)
        if p.from_addr:
            addresses.add(p.from_addr)
            senders.add(p.from_addr)
        parents.update(m for m in [p.in_reply_to, *p.references] if m)
        numbers.update(bind.ticket_numbers_in(p.subject or ""))
        dates.append(p.date or now)
    address_index = lookup_addresses(addresses, domains_to_look_up(addresses, ctx.public_domains | ctx.our_domains))
    parent_records = parent_links(parents)
    parent_ticket_ids = {r.id for refs in parent_records.values() for r in refs if r.type == "ticket"}
    window = ctx.loop_window
    by_number, by_id = load_tickets(numbers, parent_ticket_ids)
    activity = sender_activity(ctx.account_id, senders, min(dates) - window, max(dates)) \
        if ctx.loop_limit > 0 and window.total_seconds() > 0 else {}
    return BatchLookups(addresses=address_index, parents=parent_records, tickets_by_number=by_number,
                        tickets_by_id=by_id, sender_dates=activity)


@dataclass(frozen=True)
class StoredEmail:
    """An e-mail already stored, as the dedupe sees it."""

    email_id: int
    size: int
    identity: str | None  # None for mail stored before identities existed
    stored_from: int  # its first mailbox
    in_this_mailbox: bool


@dataclass
class KnownMessages:
    """What the batch's mailbox holds by message key, and what is stored (anywhere) by identity."""

    held: dict[str, StoredEmail] = field(default_factory=dict)
    by_identity: dict[str, StoredEmail] = field(default_factory=dict)


def known_messages(account_id: int, keys: set[str], identities: set[str]) -> KnownMessages:
    """The e-mails this mailbox holds under ``keys``, and those of any mailbox with ``identities``:
    one query (a ``UNION ALL`` of two index probes)."""
    known = KnownMessages()
    if not keys and not identities:
        return known
    mine = aliased(EmailMailbox)
    held = (select(literal(1).label("by_key"), EmailMailbox.message_key.label("k"), Email.id, Email.size,
                   Email.identity, Email.account_id, EmailMailbox.account_id.label("mine"))
            .join(Email, Email.id == EmailMailbox.email_id)
            .where(EmailMailbox.account_id == account_id, in_values(EmailMailbox.message_key, keys)))
    same = (select(literal(0).label("by_key"), Email.identity.label("k"), Email.id, Email.size, Email.identity,
                   Email.account_id, mine.account_id.label("mine"))
            .outerjoin(mine, and_(mine.email_id == Email.id, mine.account_id == account_id))
            .where(in_values(Email.identity, identities)))
    rows = cast("Iterable[tuple[int, str, int, int, str | None, int, int | None]]",
                db.session.execute(union_all(held, same)))
    for by_key, k, email_id, size, identity, first, in_mine in rows:
        stored = StoredEmail(email_id, size, identity, first, in_mine is not None)
        (known.held if by_key else known.by_identity)[k] = stored
    return known


def lookup_addresses(addresses: set[str], domains: set[str] | None = None) -> dict[str, list[RecordRef]]:
    """Every record whose (normalized, indexed) address is one of ``addresses``, and every
    organization owning one of ``domains`` (under ``domain_key(domain)``): one query."""
    if not addresses and not domains:
        return {}
    addrs = sorted(addresses)
    parts = [
        select(literal("contact").label("t"), Contact.id, Contact.organization_id.label("org"), Contact.email)
        .where(in_values(Contact.email, addrs)),
        select(literal("organization").label("t"), Organization.id, null().label("org"), Organization.email)
        .where(in_values(Organization.email, addrs)),
        select(literal("lead").label("t"), Lead.id, null().label("org"), Lead.email)
        .where(in_values(Lead.email, addrs)),
        select(literal("user").label("t"), User.id, null().label("org"), User.email)
        .where(in_values(User.email, addrs)),
    ]
    if domains:
        parts.append(select(literal("domain").label("t"), OrganizationDomain.organization_id, null().label("org"),
                            OrganizationDomain.domain).where(in_values(OrganizationDomain.domain, sorted(domains))))
    # (type, id, organization, address or domain); the IN on each address column matches no NULL.
    found = cast("Iterable[tuple[str, int, int | None, str]]", db.session.execute(union_all(*parts)))
    index: dict[str, list[RecordRef]] = {}
    for rtype, rid, org, email in found:
        if rtype == "domain":
            index.setdefault(domain_key(email), []).append(RecordRef("organization", rid))
        else:
            index.setdefault(email, []).append(RecordRef(rtype, rid, org))
    for refs in index.values():
        refs.sort(key=lambda r: (r.type, r.id))
    return index


def parent_links(message_ids: set[str]) -> dict[str, list[RecordRef]]:
    """Message-ID → the records the stored message with that id is related to (any mailbox)."""
    if not message_ids:
        return {}
    rows = cast("Iterable[tuple[str, str, int]]", db.session.execute(  # the IN matches no NULL Message-ID
        select(Email.message_id, EmailLink.record_type, EmailLink.record_id)
        .join(EmailLink, EmailLink.email_id == Email.id)
        .where(in_values(Email.message_id, message_ids))))
    out: dict[str, list[RecordRef]] = {}
    for mid, rtype, rid in rows:
        refs = out.setdefault(mid, [])
        ref = RecordRef(rtype, rid)
        if ref not in refs:
            refs.append(ref)
    return out


def _ticket_info(t: Any) -> TicketInfo:
    return TicketInfo(id=t.id, number=t.number or "", status=t.status, contact_id=t.contact_id,
                      organization_id=t.organization_id, requester_email=t.requester_email)


def load_tickets(numbers: set[str], ids: set[int]) -> tuple[dict[str, TicketInfo], dict[int, TicketInfo]]:
    """The tickets named by number or reached by id: one query."""
    if not numbers and not ids:
        return {}, {}
    cond = []
    if numbers:
        cond.append(in_values(Ticket.number, numbers))
    if ids:
        cond.append(Ticket.id.in_(sorted(ids)))
    rows = db.session.execute(select(Ticket.id, Ticket.number, Ticket.status, Ticket.contact_id,
                                     Ticket.organization_id, Ticket.requester_email).where(or_(*cond)))
    by_id = {r.id: _ticket_info(r) for r in rows}
    by_number = {t.number: t for t in by_id.values() if t.number}
    return by_number, by_id


def sender_activity(account_id: int, senders: set[str], start: datetime, end: datetime) -> dict[str, list[datetime]]:
    """Dates of this mailbox's stored mail from each sender between ``start`` and ``end``, sorted.

    The loop window is measured on the messages' own dates, not on when we
    stored them, so a first scan of years of mail does not look like a loop.
    """
    if not senders:
        return {}
    rows = cast("Iterable[tuple[str, datetime]]", db.session.execute(  # the conditions match no NULL
        select(Email.from_addr, Email.date)
        .where(Email.account_id == account_id, in_values(Email.from_addr, senders),
               Email.date >= start, Email.date <= end,
               # Spam and archived mail never count toward a loop.
               or_(Email.no_action.is_(None), Email.no_action.not_in(NOT_LOOP_KINDS)))))
    out: dict[str, list[datetime]] = {}
    for sender, when in rows:
        out.setdefault(sender, []).append(when)
    for dates in out.values():
        dates.sort()
    return out
