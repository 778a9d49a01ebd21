"""Who may see which ticket: tickets follow the grants of the mailbox they were made from.

A ticket made from a mailbox (``Ticket.account_id``) is visible to
administrators, to its assignee, and to users granted that mailbox, or granted
any other mailbox one of its e-mails reached (one message sent to support@ and
sales@ opens one ticket, which the users of both follow). A ticket
not made from a mailbox (or whose mailbox was deleted) is visible to
administrators and its assignee only. Who may see a ticket may change its
status; anyone else gets 404, as if it did not exist. The list, its search and
filters, the ticket's page, its status change and the related records of an
e-mail's page all go through this rule.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import ColumnElement, and_, false, or_, select, true

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
    reached = (select(EmailLink.id).join(EmailMailbox, EmailMailbox.email_id == EmailLink.email_id)
               .where(and_(EmailLink.record_type == "ticket", EmailLink.record_id == Ticket.id,
                           EmailMailbox.account_id.in_(granted))).exists())
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
