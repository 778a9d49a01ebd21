"""Bind a message to records: by address, by the thread it replies to, and by ticket number.

Pure: the scan looks every address of a batch, and every domain that may bind to an
organization (``app.scanner.domains``), up with one query (``address_index``), the
parents of every reply with one query (``parent_records``) and the quoted tickets with one query
(``tickets_by_number`` / ``tickets_by_id``), then calls ``bind_message`` per message.
"""

from __future__ import annotations

import re

from app.scanner.domains import refs_of
from app.scanner.types import BindResult, ParsedMessage, RecordRef, TicketInfo

_TICKET_NUMBER = re.compile(r"(?<![A-Za-z0-9])TT-(\d{6})(?![0-9])", re.IGNORECASE)


def addresses_to_look_up(parsed: ParsedMessage, folder_direction: str) -> list[str]:
    """Every address to look up, de-duplicated in a stable order.

    Incoming folders: From, Reply-To, To, Cc. Outgoing folders bind by recipients: To, Cc first,
    then From (our own user, who is a record too).
    """
    if folder_direction == "outgoing":
        ordered = [*parsed.to, *parsed.cc, parsed.from_addr]
    else:
        ordered = [parsed.from_addr, *parsed.reply_to, *parsed.to, *parsed.cc]
    return list(dict.fromkeys(a for a in ordered if a))


def ticket_numbers_in(subject: str) -> list[str]:
    """Ticket numbers quoted in a subject (``TT-000042``, also ``[tt-000042]``), upper-cased, in order.

    Exactly six digits: ``TT-0000421`` or ``XTT-000042`` are not ticket numbers.
    """
    if not subject or "-" not in subject:  # the cheap test first: most subjects quote no number
        return []
    return list(dict.fromkeys("TT-" + m.group(1) for m in _TICKET_NUMBER.finditer(subject)))


def sender_belongs(sender: str | None, ticket: TicketInfo, address_index: dict[str, list[RecordRef]]) -> bool:
    """True when ``sender`` may write into ``ticket``: the requester, its contact, someone of its
    organization (directly, as one of its contacts, or by its mail domain), or one of our users."""
    if not sender:
        return False
    if ticket.requester_email and sender == ticket.requester_email.strip().lower():
        return True
    for ref in refs_of(sender, address_index):
        if ref.type == "user":
            return True
        if ref.type == "contact":
            if ticket.contact_id is not None and ref.id == ticket.contact_id:
                return True
            if ticket.organization_id is not None and ref.organization_id == ticket.organization_id:
                return True
        if ref.type == "organization" and ticket.organization_id is not None and ref.id == ticket.organization_id:
            return True
    return False


class _Records:
    """An ordered set of record refs keyed by (type, id)."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], RecordRef] = {}

    def add(self, ref: RecordRef) -> None:
        self.items.setdefault((ref.type, ref.id), ref)
        if ref.type == "contact" and ref.organization_id is not None:
            self.items.setdefault(("organization", ref.organization_id), RecordRef("organization", ref.organization_id))


def bind_message(
    parsed: ParsedMessage,
    *,
    folder_direction: str,
    address_index: dict[str, list[RecordRef]],
    parent_records: dict[str, list[RecordRef]],
    tickets_by_number: dict[str, TicketInfo],
    tickets_by_id: dict[int, TicketInfo],
    belonging_index: dict[str, list[RecordRef]] | None = None,
) -> BindResult:
    """The records ``parsed`` relates to, and the ticket it belongs to.

    Records: every ref of every looked-up address and of its domain (a contact brings its
    organization, a domain the organization that owns it), then what
    the message's parents (In-Reply-To, References) were bound to, then the ticket; de-duplicated
    by (type, id), first occurrence kept.

    Ticket: a number in the subject counts only when the sender belongs to that ticket
    (``sender_belongs``); the first such number wins. A number quoted by someone else is returned
    as ``foreign_ticket_number`` (the ticket step then opens a ticket of their own) and not bound.
    Failing that, a reply belongs to the ticket its parent was bound to. Numbers that are no
    ticket of ours are ignored.

    ``belonging_index`` (optional, defaults to ``address_index``) is the sender's records for the
    belonging check when ``address_index`` was narrowed to the scanner's search fields: a
    ticket's own contact must be recognized even when the scanner does not bind to contacts.
    """
    records = _Records()
    for address in addresses_to_look_up(parsed, folder_direction):
        for ref in refs_of(address, address_index):
            records.add(ref)

    parent_ticket: TicketInfo | None = None
    for mid in dict.fromkeys(m for m in [parsed.in_reply_to, *parsed.references] if m):
        for ref in parent_records.get(mid, ()):
            records.add(ref)
            if ref.type == "ticket" and parent_ticket is None:
                parent_ticket = tickets_by_id.get(ref.id)

    ticket, foreign = _ticket_by_number(parsed, tickets_by_number,
                                        address_index if belonging_index is None else belonging_index)
    if ticket is None and parent_ticket is not None:
        ticket = parent_ticket
        if foreign == parent_ticket.number:
            foreign = None  # a reply in that ticket's own thread is not a stranger quoting it
    if ticket is not None:
        records.add(RecordRef("ticket", ticket.id))
    return BindResult(records=list(records.items.values()), ticket=ticket, foreign_ticket_number=foreign)


def _ticket_by_number(parsed: ParsedMessage, tickets_by_number: dict[str, TicketInfo],
                      belonging_index: dict[str, list[RecordRef]]) -> tuple[TicketInfo | None, str | None]:
    """The first ticket quoted in the subject whose sender belongs to it, and the first number of
    ours quoted by someone who does not belong (when it comes before such a ticket)."""
    foreign: str | None = None
    for number in ticket_numbers_in(parsed.subject):
        candidate = tickets_by_number.get(number)
        if candidate is None:
            continue
        if sender_belongs(parsed.from_addr, candidate, belonging_index):
            return candidate, foreign
        if foreign is None:
            foreign = number
    return None, foreign
