"""The start page of a user: their mailboxes, the tickets assigned to them, and the latest mail of their records.

Every list goes through the same rules as the pages it links to: mailboxes
through the grants (``autologin.grants``), tickets through
``ticket_access.ticket_visibility`` and e-mails through
``email_access.email_visibility``. Nothing here talks to a mail server: the
unread counts are the cached ones, refreshed by the worker's schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, or_, select

from app.extensions import db
from app.models import Email, EmailLink, Ticket, User
from app.services.autologin import grants
from app.services.email_access import Viewer, email_visibility, mailbox_names
from app.services.ticket_access import ticket_visibility

# How many of each list the start page shows; the full lists are one click away.
TICKETS_SHOWN = 10
MAIL_SHOWN = 8


@dataclass
class TicketLine:
    """One ticket assigned to the user."""

    id: int
    number: str
    subject: str
    status: str
    updated_at: datetime | None


@dataclass
class MailLine:
    """One e-mail related to the user's records."""

    id: int
    subject: str
    sender: str
    date: datetime | None
    mailbox: str


@dataclass
class StartPage:
    """What the start page shows to one user (administrators get the scanner board besides)."""

    mailboxes: list[dict] = field(default_factory=list)
    tickets: list[TicketLine] = field(default_factory=list)
    open_tickets: int = 0
    mail: list[MailLine] = field(default_factory=list)


def assigned_tickets(user: User, limit: int = TICKETS_SHOWN) -> tuple[list[TicketLine], int]:
    """The user's tickets that are not closed, last changed first, and how many there are in all."""
    mine = (Ticket.assignee_id == user.id, Ticket.status != "closed", ticket_visibility(user))
    total = db.session.scalar(select(func.count(Ticket.id)).where(*mine)) or 0
    rows = db.session.execute(
        select(Ticket.id, Ticket.number, Ticket.subject, Ticket.status, Ticket.updated_at)
        .where(*mine).order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(limit)).all()
    return [TicketLine(r.id, r.number or f"#{r.id}", r.subject, r.status, r.updated_at) for r in rows], total


def related_mail(user: User, limit: int = MAIL_SHOWN) -> list[MailLine]:
    """The newest e-mails bound to the user or to a ticket assigned to them, that the user may read.

    Starts from the links of the user's records (few), not from the e-mails by date: the
    order is on an expression no index matches, so the database sorts only those.
    """
    my_tickets = select(Ticket.id).where(Ticket.assignee_id == user.id).scalar_subquery()
    linked = select(EmailLink.email_id).where(or_(
        (EmailLink.record_type == "user") & (EmailLink.record_id == user.id),
        (EmailLink.record_type == "ticket") & EmailLink.record_id.in_(my_tickets)))
    newest = func.coalesce(Email.date, Email.created_at)
    rows = db.session.execute(
        select(Email.id, Email.subject, Email.from_name, Email.from_addr, newest.label("when"))
        .where(Email.id.in_(linked), email_visibility(user))
        .order_by(newest.desc(), Email.id.desc()).limit(limit)).all()
    # Named by a mailbox the user may read, not necessarily the one the e-mail was stored from.
    names = mailbox_names(user, [r.id for r in rows])
    return [MailLine(r.id, r.subject or "(no subject)", r.from_name or r.from_addr or "—", r.when,
                     names.get(r.id, "")) for r in rows]


def start_page(user: Viewer) -> StartPage:
    """Everything the start page shows to ``user``: a handful of small queries, no mail server."""
    if user is None or not getattr(user, "is_authenticated", False):
        return StartPage()
    tickets, total = assigned_tickets(user)
    return StartPage(mailboxes=grants.mailbox_buttons(user), tickets=tickets, open_tickets=total,
                     mail=related_mail(user))
