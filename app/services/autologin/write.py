""""Write e-mail" on a contact's, organization's, lead's or ticket's page: whom to, from which mailbox.

The page shows what ``write_options`` offers: the mailboxes the user may open (a
picker when there are several) and the record's addresses (an organization offers
its own and its contacts'). The click posts a mailbox and one of those addresses;
``compose_target`` checks both again and builds the compose target the hand-off
keeps with its token. A recipient is only ever one the record offers, never text
from the request. For a ticket the subject carries its number, so the answer binds
back to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from app.extensions import db
from app.models import Contact, Lead, MailAccount, Organization, Ticket
from app.services.autologin import targets
from app.services.autologin.grants import mailboxes_for
from app.services.email_access import Viewer
from app.services.ticket_access import ticket_visibility

KINDS = ("contact", "organization", "lead", "ticket")
# An organization offers its contacts' addresses too; the picker lists this many at most.
MAX_CONTACTS = 50

NO_MAILBOX = "No mailbox is granted to you, so there is nothing to write from. Ask an administrator to grant you one."
NO_ADDRESS = {
    "contact": "This contact has no e-mail address. Add one (Edit) to write to it.",
    "organization": "Neither this organization nor its contacts have an e-mail address.",
    "lead": "This lead has no e-mail address. Add one (Edit) to write to it.",
    "ticket": "This ticket has no requester address and no contact with an address.",
}


class WriteRefused(Exception):
    """The e-mail cannot be written as asked; the message says why in plain words."""


@dataclass
class Recipient:
    """One address a record offers: ``value`` goes to the To field, ``label`` to the picker."""

    address: str
    value: str
    label: str


@dataclass
class WriteOptions:
    """What a record page's "Write e-mail" offers: mailboxes, recipients, or why it offers nothing."""

    kind: str
    record_id: int
    mailboxes: list[MailAccount] = field(default_factory=list)
    recipients: list[Recipient] = field(default_factory=list)
    reason: str | None = None
    # The mailbox the picker starts on: a ticket's own mailbox when the user may open it.
    preselected: int | None = None


def _record(user: Viewer, kind: str, record_id: int):
    """The record, or None when it does not exist or (a ticket) the user may not see it."""
    if kind == "ticket":
        return db.session.scalar(select(Ticket).where(Ticket.id == record_id, ticket_visibility(user)))
    model = {"contact": Contact, "organization": Organization, "lead": Lead}.get(kind)
    return db.session.get(model, record_id) if model is not None else None


def _offer(recipients: list[Recipient], address: str | None, name: str | None, label: str) -> None:
    if not address or any(r.address == address.lower() for r in recipients):
        return
    try:
        value = targets.recipient(address, name)
    except targets.TargetError:
        return  # an address the compose window could not take is not offered
    recipients.append(Recipient(address=address.lower(), value=value,
                                label=f"{label} <{address}>" if label and label != address else address))


def recipients_of(kind: str, record) -> list[Recipient]:
    """The addresses ``record`` offers, its own first."""
    found: list[Recipient] = []
    if kind in ("contact", "lead"):
        _offer(found, record.email, record.name, record.name)
    elif kind == "organization":
        _offer(found, record.email, record.name, record.name)
        contacts = db.session.scalars(
            select(Contact).where(Contact.organization_id == record.id, Contact.email.is_not(None))
            .order_by(Contact.last_name, Contact.first_name, Contact.id).limit(MAX_CONTACTS))
        for contact in contacts:
            _offer(found, contact.email, contact.name, contact.name)
    elif kind == "ticket":
        contact = record.contact
        name = contact.name if contact is not None and contact.email == record.requester_email else None
        _offer(found, record.requester_email, name, name or "Requester")
        if contact is not None:
            _offer(found, contact.email, contact.name, contact.name)
    return found


def subject_of(kind: str, record) -> str:
    """The subject the compose window starts with: a ticket's number and subject, else empty."""
    return targets.ticket_subject(record.number, record.subject) if kind == "ticket" else ""


def write_options(user: Viewer, kind: str, record) -> WriteOptions:
    """What "Write e-mail" offers ``user`` on the page of ``record`` (one the page already let them see)."""
    options = WriteOptions(kind=kind, record_id=record.id, mailboxes=mailboxes_for(user),
                           recipients=recipients_of(kind, record))
    if kind == "ticket" and any(m.id == record.account_id for m in options.mailboxes):
        options.preselected = record.account_id
    if not options.mailboxes:
        options.reason = NO_MAILBOX
    elif not options.recipients:
        options.reason = NO_ADDRESS[kind]
    return options


def compose_target(user: Viewer, kind: str, record_id: int, to: str | None) -> targets.Target:
    """The compose target for a click on "Write e-mail": ``to`` must be one the record offers.

    Raises LookupError when the record does not exist or the user may not see it
    (answered 404), and WriteRefused with the reason otherwise. Whether the user
    may open the chosen mailbox is the hand-off's check (``handoff.open_mailbox``).
    """
    record = _record(user, kind, record_id)
    if record is None:
        raise LookupError(f"No {kind} {record_id}.")
    offered = recipients_of(kind, record)
    if not offered:
        raise WriteRefused(NO_ADDRESS[kind])
    if to:
        chosen = next((r for r in offered if r.value == to), None)
        if chosen is None:
            raise WriteRefused("Pick one of the listed addresses and try again.")
    else:
        chosen = offered[0]
    return targets.compose(chosen.value, subject_of(kind, record))
