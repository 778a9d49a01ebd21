"""Tickets: list filtered by status, detail with related e-mails, status change."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.models import Ticket
from app.models.records import TICKET_PREFIX, TICKET_STATUSES
from app.records.blueprint import bp
from app.records.common import like_any, paginate, related_emails, search_term
from app.records.forms import STATUS_LABELS, TicketStatusForm
from app.services import records as record_service
from app.services.autologin import write
from app.services.ticket_access import get_visible_ticket_or_404, ticket_visibility, visible_ticket_ids


def _with_people(query):
    return query.options(joinedload(Ticket.contact), joinedload(Ticket.organization),
                         joinedload(Ticket.assignee))


@bp.route("/tickets")
def tickets():
    """List the tickets the user may see, newest first, filtered by status and searched by number or subject."""
    q = search_term()
    status = request.args.get("status", "")
    query = (_with_people(select(Ticket)).where(ticket_visibility(current_user))
             .order_by(Ticket.created_at.desc(), Ticket.id.desc()))
    if status in TICKET_STATUSES:
        query = query.where(Ticket.status == status)
    else:
        status = ""
    if q:
        if q.upper().startswith(TICKET_PREFIX):
            query = query.where(Ticket.number == q.upper())
        else:
            query = query.where(like_any(q, Ticket.subject, Ticket.number, Ticket.requester_email))
    return render_template("records/tickets.html", page=paginate(query), q=q, status=status,
                           statuses=STATUS_LABELS)


@bp.route("/tickets/<int:ticket_id>")
def ticket_detail(ticket_id: int):
    """One ticket, its people, its parent and its related e-mails."""
    ticket = get_visible_ticket_or_404(ticket_id, current_user, joinedload(Ticket.contact),
                                       joinedload(Ticket.organization), joinedload(Ticket.assignee),
                                       joinedload(Ticket.parent))
    # The ticket it follows up is named only when the user may see that one too.
    parent = ticket.parent if ticket.parent_id and visible_ticket_ids(current_user, {ticket.parent_id}) else None
    form = TicketStatusForm(status=ticket.status)
    return render_template("records/ticket_detail.html", ticket=ticket, form=form, statuses=STATUS_LABELS,
                           parent=parent, emails=related_emails("ticket", ticket.id),
                           write=write.write_options(current_user, "ticket", ticket))


@bp.route("/tickets/<int:ticket_id>/status", methods=["POST"])
def ticket_status(ticket_id: int):
    """Change the status of a ticket the user may see (POST with the CSRF token)."""
    ticket = get_visible_ticket_or_404(ticket_id, current_user)
    form = TicketStatusForm()
    if not form.validate_on_submit():
        flash("Pick one of the listed statuses and try again.", "error")
    elif record_service.set_ticket_status(ticket, form.status.data):
        flash(f"Ticket {ticket.number} is now {STATUS_LABELS[ticket.status].lower()}.", "success")
    else:
        flash(f"Ticket {ticket.number} already was {STATUS_LABELS[ticket.status].lower()}.", "info")
    return redirect(url_for("records.ticket_detail", ticket_id=ticket.id))
