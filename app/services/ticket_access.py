"""Who may see which ticket: tickets follow the grants of the mailbox they were made from.

A ticket made from a mailbox (``Ticket.account_id``) is visible to
administrators, to its assignee, to users granted that mailbox, and to users
granted any other mailbox that the message which opened it reached (one message
sent to support@ and sales@ is stored once and opens one ticket, which the users
of both follow). The message which opened it is the first e-mail linked to the
ticket that reached the ticket's own mailbox. Later mail bound to the ticket by
its number counts for nothing here: anyone can write a ticket number in a
subject and send it to several mailboxes, and that must not show another
mailbox's ticket to the users of the mailbox it was sent to. A ticket not made
from a mailbox (or whose mailbox was deleted) is visible to administrators and
its assignee only. Who may see a ticket may change its status; anyone else gets
404, as if it did not exist. The list, its search and filters, the ticket's
page, its status change and the related records of an e-mail's page all go
through this rule.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import ColumnElement, false, func, or_, select, true

from app.extensions import db
from app.models import AutologinGrant, EmailLink, EmailMailbox, Ticket
from app.services.email_access import is_admin


def ticket_visibility(user) -> ColumnElement[bool]:
    """A WHERE clause keeping only the tickets ``user`` may see."""
    if is_admin(user):
        return true()
    if not getattr(user, "is_authenticated", False):
        return false()
    granted = select(AutologinGrant.account_id).where(AutologinGrant.user_id == user.id).scalar_subquery()
    opener = (select(func.min(EmailLink.email_id))
              .join(EmailMailbox, EmailMailbox.email_id == EmailLink.email_id)
              .where(EmailLink.record_type == "ticket", EmailLink.record_id == Ticket.id,
                     EmailMailbox.account_id == Ticket.account_id)
              .correlate(Ticket).scalar_subquery())
    reached = select(EmailMailbox.id).where(EmailMailbox.email_id == opener,
                                            EmailMailbox.account_id.in_(granted)).exists()
    return or_(Ticket.assignee_id == user.id, Ticket.account_id.in_(granted), reached)


def visible_ticket_ids(user, ids: list[int] | set[int]) -> set[int]:
    """The subset of ``ids`` that ``user`` may see (one query)."""
    if not ids:
        return set()
    return set(db.session.scalars(select(Ticket.id).where(Ticket.id.in_(sorted(ids)), ticket_visibility(user))))


def get_visible_ticket_or_404(ticket_id: int, user, *options) -> Ticket:
    """The ticket with that id when ``user`` may see it; 404 otherwise (existence not revealed)."""
    query = select(Ticket).where(Ticket.id == ticket_id, ticket_visibility(user))
    if options:
        query = query.options(*options)
    ticket = db.session.scalar(query)
    if ticket is None:
        abort(404)
    return ticket
