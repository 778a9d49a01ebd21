"""The per-message decisions of a batch: direction, binding, loop protection and the ticket action.

Pure: ``decide_batch`` takes the batch's new messages and what the batch's queries found
(``BatchLookups``) and returns what to write (``BatchDecisions``); it reads no database and
changes none of its arguments. Messages are decided in UID order, and each one sees what the
earlier ones of the same batch did:

- a ticket opened by an earlier message gets a negative placeholder id (``NewTicket.temp_id``),
  so a reply later in the batch already finds it, by reply or by number;
- a ticket reopened or answered earlier has its new status;
- a reply binds to what its parent, earlier in the batch, was bound to;
- the loop protection counts the earlier messages of the same sender.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from app.scanner import bind, direction, tickets
from app.scanner.domains import refs_of
from app.scanner.throttle import SenderWindow
from app.scanner.types import (
    BatchDecisions,
    BatchItem,
    BatchLookups,
    MessageDecision,
    NewMessage,
    NewTicket,
    ParsedMessage,
    RecordRef,
    StoreContext,
    TicketAction,
    TicketInfo,
)

# Record type as stored on links → the search field that enables it.
FIELD_OF = {"contact": "contacts", "organization": "organizations", "lead": "leads", "user": "users"}


def searchable(addresses: dict[str, list[RecordRef]], search_fields: frozenset[str]) -> dict[str, list[RecordRef]]:
    """The address index narrowed to the record types of the scanner's search fields (no empty entries)."""
    narrowed = {a: [r for r in refs if FIELD_OF.get(r.type) in search_fields] for a, refs in addresses.items()}
    return {a: refs for a, refs in narrowed.items() if refs}


def sender_records(refs: list[RecordRef]) -> tuple[int | None, int | None]:
    """The contact and organization a new ticket gets from its sender's records (the address's
    own first, then those of its domain)."""
    contact = next((r for r in refs if r.type == "contact"), None)
    if contact is not None:
        return contact.id, contact.organization_id
    org = next((r for r in refs if r.type == "organization"), None)
    return None, org.id if org else None


class _Batch:
    """What the decisions of one batch share and change as they go, on copies of the lookups."""

    def __init__(self, ctx: StoreContext, lookups: BatchLookups) -> None:
        self.ctx = ctx
        self.all_addresses = lookups.addresses
        self.addresses = searchable(lookups.addresses, ctx.search_fields)
        self.parents = {mid: list(refs) for mid, refs in lookups.parents.items()}
        self.by_number = dict(lookups.tickets_by_number)
        self.by_id = dict(lookups.tickets_by_id)
        self.senders = SenderWindow(lookups.sender_dates, ctx.loop_limit, ctx.loop_window)
        self.out = BatchDecisions(messages=[], new_tickets=[], status_changes={})

    def open_ticket(self, parsed: ParsedMessage, action: TicketAction) -> TicketInfo:
        """Record a ticket opened by ``parsed`` and return it under its placeholder id."""
        temp = -(len(self.out.new_tickets) + 1)
        contact_id, org_id = sender_records(refs_of(parsed.from_addr, self.all_addresses) if parsed.from_addr else [])
        self.out.new_tickets.append(NewTicket(
            temp_id=temp, subject=parsed.subject or "(no subject)", contact_id=contact_id,
            organization_id=org_id, parent_id=action.ticket_id if action.kind == "new_referring" else None,
            requester_email=parsed.from_addr))
        ticket = TicketInfo(id=temp, number="", status="open", contact_id=contact_id,
                            organization_id=org_id, requester_email=parsed.from_addr)
        self.by_id[temp] = ticket
        self.out.tickets_created += 1
        return ticket

    def change_status(self, ticket_id: int, reopen: bool, ticket: TicketInfo | None) -> TicketInfo | None:
        """Record a reopened (else answered) ticket; returns it with its new status when it is known."""
        new_status = "open" if reopen else "answered"
        self.out.status_changes[ticket_id] = new_status
        if ticket_id in self.by_id:
            ticket = replace(self.by_id[ticket_id], status=new_status)
            self.by_id[ticket_id] = ticket
            if ticket.number:
                self.by_number[ticket.number] = ticket
        if reopen:
            self.out.tickets_reopened += 1
        return ticket

    def remember_links(self, parsed: ParsedMessage, links: set[tuple[str, int]]) -> None:
        """Replies later in this batch bind to what ``parsed`` is bound to."""
        if not parsed.message_id:
            return
        refs = self.parents.setdefault(parsed.message_id, [])
        have = {(r.type, r.id) for r in refs}
        refs.extend(RecordRef(t, i) for t, i in sorted(links) if (t, i) not in have)


def _decide_message(batch: _Batch, message: NewMessage, now: datetime) -> MessageDecision:
    """Direction, records, loop protection and the ticket action of one message, applied to ``batch``.

    ``now`` stands for the date of a message that has none.
    """
    ctx = batch.ctx
    item = message.item
    p = item.parsed
    mail_direction = direction.direction_of(p, item.folder_direction, ctx.our_addresses, ctx.our_domains)
    bound = bind.bind_message(
        p, folder_direction=item.folder_direction, address_index=batch.addresses,
        parent_records=batch.parents, tickets_by_number=batch.by_number, tickets_by_id=batch.by_id)
    # Archived mail and spam never count toward a sender's loop: they act on nothing anyway.
    throttled = not item.archived and item.spam is None and not batch.senders.allow(p.from_addr, p.date or now)
    action = tickets.decide(p, direction=mail_direction, bound=bound, policy=ctx.policy,
                            filter_allows=item.verdict.tickets, throttled=throttled, spam=item.spam,
                            archived=item.archived)
    links: set[tuple[str, int]] = set()
    if ctx.binds:
        links.update((r.type, r.id) for r in bound.records)
    ticket = bound.ticket
    if action.kind in ("create", "new_referring"):
        ticket = batch.open_ticket(p, action)
    elif action.kind in ("reopen", "answered") and action.ticket_id is not None:
        ticket = batch.change_status(action.ticket_id, action.kind == "reopen", ticket)
    if ticket is not None:
        links.add(("ticket", ticket.id))
    batch.remember_links(p, links)
    decision = MessageDecision(message, mail_direction, links)
    if action.held:
        decision.held = action.held
        decision.held_reason = held_sentence(action.held, item, ctx)
    return decision


def _minutes(window: timedelta) -> str:
    minutes = max(1, round(window.total_seconds() / 60))
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def held_sentence(kind: str, item: BatchItem, ctx: StoreContext) -> str:
    """Why a message held from its usual actions opens and reopens no ticket, as its page says it."""
    p = item.parsed
    if kind == "archived":
        why = "It was already in the mailbox when the scanner began importing it as an archive"
    elif kind == "spam":
        why = f"The mail server's spam filter flagged it ({item.spam})"
    elif kind == "automatic":
        why = f"It is automatic mail ({p.automatic_reason})"
    elif kind == "filtered":
        rule = f" (filter {item.verdict.rule_id})" if item.verdict.rule_id is not None else ""
        why = f"An ignore filter{rule} keeps it from tickets"
    elif kind == "no_sender":
        why = "It has no sender address, so there is nobody to answer"
    elif kind == "throttled":
        why = (f"Loop protection: {p.from_addr} had already sent {ctx.loop_limit} message(s) within "
               f"{_minutes(ctx.loop_window)} before this one")
    else:
        why = f"It was held from its usual actions ({kind})"
    return f"{why}: it was stored, but opens and reopens no ticket."


def decide_batch(ctx: StoreContext, messages: list[NewMessage], lookups: BatchLookups,
                 now: datetime) -> BatchDecisions:
    """Decide every message of a batch, in order (see the module docstring); changes no argument."""
    batch = _Batch(ctx, lookups)
    decided = batch.out.messages
    for message in messages:
        decided.append(_decide_message(batch, message, now))
    return batch.out
