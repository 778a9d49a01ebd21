"""E-mails: the list, one e-mail's page, its body in a sandboxed frame, attachments and the original."""

from __future__ import annotations

from flask import abort, make_response, render_template, request
from flask_login import current_user
from sqlalchemy import false, select
from sqlalchemy.orm import joinedload, selectinload, undefer

from app.extensions import db
from app.models import (
    Contact,
    Email,
    EmailAttachment,
    EmailLink,
    EmailMailbox,
    Lead,
    MailAccount,
    Organization,
    Ticket,
    User,
)
from app.models.emails import DIRECTIONS
from app.records.blueprint import bp
from app.records.common import email_list_query, like_any, paginate_emails, search_term
from app.records.downloads import download
from app.records.mail_body import (
    BODY_CSP,
    REMOTE_BODY_CSP,
    body_document,
    content_ids_in,
    inline_image_uri,
    normalize_cid,
    rewrite_images,
)
from app.scanner.types import RECEIVED_DATE_DEFECT
from app.services.autologin import webmail
from app.services.email_access import email_visibility, get_visible_email_or_404, reached_mailboxes
from app.services.ticket_access import ticket_visibility

# How each record type is named and linked on an e-mail's page.
RECORD_KINDS = {
    "contact": (Contact, "Contact", "records.contact_detail", "contact_id"),
    "organization": (Organization, "Organization", "records.organization_detail", "org_id"),
    "lead": (Lead, "Lead", "records.lead_detail", "lead_id"),
    "ticket": (Ticket, "Ticket", "records.ticket_detail", "ticket_id"),
    "user": (User, "User", "records.user_detail", "user_id"),
}


def _visible_mailboxes() -> list:
    return db.session.execute(select(MailAccount.id, MailAccount.name)
                              .where(email_visibility(current_user, MailAccount.id))
                              .order_by(MailAccount.name)).all()


@bp.route("/emails")
def emails():
    """E-mails the user may see, newest first, filtered by mailbox and direction, searched by subject/sender."""
    q = search_term()
    query = email_list_query()
    mailboxes = _visible_mailboxes()
    mailbox = request.args.get("mailbox", type=int)
    direction = request.args.get("direction", "")
    if mailbox:
        # A mailbox the user may not see (or that does not exist) shows nothing, like any other filter.
        # Every e-mail that reached the mailbox, also those stored first from another one.
        reached = select(EmailMailbox.email_id).where(EmailMailbox.account_id == mailbox)
        query = query.where(Email.id.in_(reached)) if mailbox in {m.id for m in mailboxes} \
            else query.where(false())
    if direction in DIRECTIONS:
        query = query.where(Email.direction == direction)
    else:
        direction = ""
    if q:
        query = query.where(like_any(q, Email.subject, Email.from_addr, Email.from_name))
    return render_template("records/emails.html", page=paginate_emails(query), q=q, mailbox=mailbox or "",
                           direction=direction, directions=DIRECTIONS, mailboxes=mailboxes)


def _record_label(kind: str, record) -> str:
    if kind == "ticket":
        return f"{record.number or ''} {record.subject}".strip()
    if kind == "user":
        return record.display_name
    return record.name


def _related_records(email_id: int) -> list[dict]:
    """The records an e-mail is related to: one query for the links, one per record type present."""
    links = db.session.execute(select(EmailLink.record_type, EmailLink.record_id)
                               .where(EmailLink.email_id == email_id)).all()
    ids_by_kind: dict[str, list[int]] = {}
    for kind, record_id in links:
        if kind in RECORD_KINDS:
            ids_by_kind.setdefault(kind, []).append(record_id)
    related = []
    for kind, ids in ids_by_kind.items():
        model, label, endpoint, arg = RECORD_KINDS[kind]
        query = select(model).where(model.id.in_(ids)).order_by(model.id)
        if kind == "ticket":  # a ticket of a mailbox the user may not see is not named here either
            query = query.where(ticket_visibility(current_user))
        for record in db.session.scalars(query):
            related.append({"kind": label, "label": _record_label(kind, record), "endpoint": endpoint,
                            "args": {arg: record.id}})
    return related


@bp.route("/emails/<int:email_id>")
def email_detail(email_id: int):
    """One e-mail: headers, related records, attachments and the body in a sandboxed frame."""
    email = get_visible_email_or_404(email_id, current_user, joinedload(Email.account).load_only(MailAccount.name),
                                     selectinload(Email.attachments), undefer(Email.body_html),
                                     undefer(Email.body_text))
    show_remote = request.args.get("remote") == "1"
    defects = (email.defects or "").splitlines()
    return render_template("records/email_detail.html", email=email, related=_related_records(email.id),
                           mailboxes=reached_mailboxes(email.id, current_user), show_remote=show_remote,
                           has_html=bool((email.body_html or "").strip()),
                           webmail_places=webmail.places_for(current_user, email),
                           date_received=RECEIVED_DATE_DEFECT in defects,
                           defects="\n".join(d for d in defects if d != RECEIVED_DATE_DEFECT))


@bp.route("/emails/<int:email_id>/body")
def email_body(email_id: int):
    """The stored, sanitized body as its own document, under a policy that runs nothing.

    Remote images are blocked unless ``?remote=1``; inline ``cid:`` images are
    embedded from their attachments as data: URIs, because a sandboxed frame
    has no origin of its own and the browser would not send the session
    cookie with a request for the attachment.
    """
    email = get_visible_email_or_404(email_id, current_user, undefer(Email.body_html), undefer(Email.body_text))
    allow_remote = request.args.get("remote") == "1"
    body_html = email.body_html or ""
    wanted = content_ids_in(body_html)
    sources: dict[str, str] = {}
    if wanted:
        attachments = db.session.scalars(
            select(EmailAttachment).where(EmailAttachment.email_id == email.id,
                                          EmailAttachment.content_id.is_not(None))
            .options(undefer(EmailAttachment.data))).all()
        for att in attachments:
            cid = normalize_cid(att.content_id)
            if cid in wanted and cid not in sources:
                uri = inline_image_uri(att.content_type, att.data)
                if uri:
                    sources[cid] = uri
    if body_html:
        body_html = rewrite_images(body_html, sources, allow_remote=allow_remote)
    response = make_response(body_document(body_html, email.body_text or ""))
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Security-Policy"] = REMOTE_BODY_CSP if allow_remote else BODY_CSP
    # Framed by our own e-mail page only; the app-wide DENY would blank it.
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/emails/<int:email_id>/attachments/<int:attachment_id>")
def email_attachment(email_id: int, attachment_id: int):
    """Download one attachment, always as a file."""
    email = get_visible_email_or_404(email_id, current_user)
    attachment = db.session.scalar(
        select(EmailAttachment).where(EmailAttachment.id == attachment_id, EmailAttachment.email_id == email.id)
        .options(undefer(EmailAttachment.data)))
    if attachment is None:
        abort(404)
    return download(attachment.data, attachment.filename, attachment.content_type)


@bp.route("/emails/<int:email_id>/original.eml")
def email_original(email_id: int):
    """Download the original message exactly as fetched (raw bytes, whatever their encoding)."""
    email = get_visible_email_or_404(email_id, current_user, undefer(Email.raw))
    if email.raw is None:
        abort(404)
    return download(email.raw, f"message-{email.id}.eml", "message/rfc822")
