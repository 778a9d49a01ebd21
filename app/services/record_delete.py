"""Deleting contacts, organizations and leads, and saying first what happens to their links.

E-mails are never deleted with a record: they belong to their mailbox. What a
deletion removes is the record and its relations to e-mails (the links), so the
e-mails stay stored, searchable and readable from their mailbox. Contacts of a
deleted organization, and tickets of a deleted contact or organization, stay and
lose that field. The addresses of a deleted record no longer relate new mail to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select, update

from app.extensions import db
from app.models import Contact, EmailLink, Lead, Organization, OrganizationDomain, Ticket
from app.services import audit

MODELS = {"contact": Contact, "organization": Organization, "lead": Lead}


class RecordNotFound(LookupError):
    """No record of that kind has that id."""


def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


@dataclass(frozen=True)
class DeleteImpact:
    """A record and what deleting it does to what refers to it."""

    kind: str
    record_id: int
    name: str
    email: str | None
    emails: int
    contacts: int = 0
    tickets: int = 0
    domains: tuple[str, ...] = ()  # an organization's mail domains

    def consequences(self) -> list[str]:
        """The effects in words, one sentence each, for the confirm page."""
        said = []
        if self.emails:
            said.append(f"{_count(self.emails, 'e-mail stays', 'e-mails stay')} stored but "
                        f"{'is' if self.emails == 1 else 'are'} no longer related to this {self.kind}.")
        else:
            said.append(f"No e-mail is related to this {self.kind}.")
        if self.contacts:
            said.append(f"{_count(self.contacts, 'contact loses', 'contacts lose')} "
                        f"{'its' if self.contacts == 1 else 'their'} organization (the contacts stay).")
        if self.tickets:
            said.append(f"{_count(self.tickets, 'ticket loses', 'tickets lose')} "
                        f"{'its' if self.tickets == 1 else 'their'} {self.kind} (the tickets stay).")
        if self.email:
            article = "an" if self.kind[0] in "aeiou" else "a"
            said.append(f"New mail from or to {self.email} is no longer related to {article} {self.kind}.")
        if self.domains:
            said.append(f"New mail from or to addresses at {', '.join(self.domains)} is no longer related to "
                        "an organization (the domains are deleted with it).")
        return said


def _record(kind: str, record_id: int):
    model = MODELS.get(kind)
    record = db.session.get(model, record_id) if model is not None else None
    if record is None:
        raise RecordNotFound(f"There is no {kind} {record_id}.")
    return record


def impact(kind: str, record_id: int) -> DeleteImpact:
    """What deleting the record would do; raises :class:`RecordNotFound`."""
    record = _record(kind, record_id)
    emails = db.session.scalar(select(func.count()).select_from(EmailLink).where(
        EmailLink.record_type == kind, EmailLink.record_id == record_id)) or 0
    contacts = tickets = 0
    if kind == "organization":
        contacts = db.session.scalar(select(func.count()).select_from(Contact)
                                     .where(Contact.organization_id == record_id)) or 0
    if kind in ("contact", "organization"):
        column = Ticket.contact_id if kind == "contact" else Ticket.organization_id
        tickets = db.session.scalar(select(func.count()).select_from(Ticket).where(column == record_id)) or 0
    domains = tuple(record.domain_names) if kind == "organization" else ()
    return DeleteImpact(kind, record_id, record.name, record.email, emails, contacts, tickets, domains)


def delete_record(kind: str, record_id: int) -> DeleteImpact:
    """Delete the record and its e-mail links, detach its contacts and tickets; audited, one transaction."""
    effect = impact(kind, record_id)
    db.session.execute(delete(EmailLink).where(EmailLink.record_type == kind, EmailLink.record_id == record_id)
                       .execution_options(synchronize_session=False))
    # Set to NULL here as well as by the foreign keys, so that the outcome does not depend on the database's
    # enforcement of ON DELETE (SQLite applies it only with the foreign_keys pragma on).
    if kind == "organization":
        db.session.execute(delete(OrganizationDomain).where(OrganizationDomain.organization_id == record_id)
                           .execution_options(synchronize_session=False))
        db.session.execute(update(Contact).where(Contact.organization_id == record_id)
                           .values(organization_id=None).execution_options(synchronize_session=False))
        db.session.execute(update(Ticket).where(Ticket.organization_id == record_id)
                           .values(organization_id=None).execution_options(synchronize_session=False))
    elif kind == "contact":
        db.session.execute(update(Ticket).where(Ticket.contact_id == record_id)
                           .values(contact_id=None).execution_options(synchronize_session=False))
    db.session.execute(delete(MODELS[kind]).where(MODELS[kind].id == record_id)
                       .execution_options(synchronize_session=False))
    audit.record(f"{kind}.delete", f"{kind} {record_id} ({effect.name})"[:200],
                 " ".join(effect.consequences()))
    db.session.commit()
    db.session.expire_all()
    return effect
