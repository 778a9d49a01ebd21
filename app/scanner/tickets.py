"""Ticket actions: what one message does to tickets, as a plain decision."""

from __future__ import annotations

from app.scanner.types import BindResult, ParsedMessage, TicketAction, TicketInfo, TicketPolicy


def decide(
    parsed: ParsedMessage,
    *,
    direction: str,
    bound: BindResult,
    policy: TicketPolicy,
    filter_allows: bool,
    throttled: bool,
    spam: str | None = None,
    archived: bool = False,
) -> TicketAction:
    """Decide the ticket action for one stored message.

    - Our own mail ("sent", "internal") never acts on tickets.
    - Mail imported as an archive, spam (``spam`` says why), automatic mail (auto-reply, bounce,
      bulk), a message an ignore filter keeps from tickets, a message without a sender (nobody to
      answer) and a throttled sender (loop protection) act on nothing: ``held`` names which
      (``HELD_KINDS``), ``reason`` says it in words.
    - Bound to a closed ticket: ``closed_policy`` "reopen" → reopen (needs the *Open a ticket*
      action); "new_ticket" → new_referring with ``ticket_id`` the closed ticket (needs *Create a
      ticket*); "ignore" → none.
    - Bound to a ticket waiting for the customer → answered (needs *Open a ticket*).
    - Bound to an open / in progress / answered ticket → none (it is already open).
    - Bound to no ticket → create when *Create a ticket* is on (also when the subject quoted
      someone else's ticket number: the stranger gets a ticket of their own).
    """
    if direction == "sent":
        return TicketAction("none", reason="sent by us")
    if direction == "internal":
        return TicketAction("none", reason="internal message")
    if archived:
        held: tuple[str, str] | None = ("archived", "imported as an archive: it was there before the scanner began")
    elif spam:
        held = ("spam", f"spam: {spam}")
    else:
        held = _held(parsed, filter_allows, throttled)
    if held:
        return TicketAction("none", reason=held[1], held=held[0])
    ticket = bound.ticket
    if ticket is not None:
        return _for_bound_ticket(ticket, policy)
    if policy.create:
        if bound.foreign_ticket_number:
            return TicketAction(
                "create", None, f"{bound.foreign_ticket_number} belongs to someone else: a ticket of their own"
            )
        return TicketAction("create", None, "new conversation")
    return TicketAction("none", reason="no ticket, and the Create a ticket action is off")


def _held(parsed: ParsedMessage, filter_allows: bool, throttled: bool) -> tuple[str, str] | None:
    """Why a received message acts on no ticket whatever it is bound to: (kind, words), or None when it may."""
    if parsed.automatic_reason:
        return "automatic", f"automatic mail: {parsed.automatic_reason}"
    if not filter_allows:
        return "filtered", "an ignore filter keeps this message from tickets"
    if not parsed.from_addr:
        return "no_sender", "the message has no sender address, so there is nobody to answer"
    if throttled:
        return "throttled", "too many messages from this sender in a short time (loop protection)"
    return None


def _for_bound_ticket(ticket: TicketInfo, policy: TicketPolicy) -> TicketAction:
    """The action of a message bound to ``ticket``, by the ticket's status."""
    if ticket.status == "closed":
        if policy.closed_policy == "reopen":
            if policy.reopen:
                return TicketAction("reopen", ticket.id, f"new mail for closed ticket {ticket.number}")
            return TicketAction("none", None, "ticket closed; the Open a ticket action is off")
        if policy.closed_policy == "new_ticket":
            if policy.create:
                return TicketAction("new_referring", ticket.id, f"new ticket referring to closed {ticket.number}")
            return TicketAction("none", None, "ticket closed; the Create a ticket action is off")
        return TicketAction("none", None, "ticket closed; the configuration leaves closed tickets alone")
    if ticket.status == "waiting":
        if policy.reopen:
            return TicketAction("answered", ticket.id, f"the customer answered ticket {ticket.number}")
        return TicketAction("none", None, "ticket waiting; the Open a ticket action is off")
    return TicketAction("none", None, f"ticket {ticket.number} is already open")
