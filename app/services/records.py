"""Creating and changing CRM records from the record pages: contacts, organizations, leads, tickets."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Contact, Lead, Organization, Ticket
from app.models.base import normalize_email, utcnow
from app.models.records import TICKET_STATUSES
from app.services import audit
from app.services.organization_domains import DomainRules, set_domains

# A pragmatic address check: the dot-atom forms people type, any domain with a dot (internal ones such as
# corp.local or example.test included, which stricter validators refuse), and fast enough for big imports.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\uffff-]+)*"
_LABEL = r"[A-Za-z0-9\u0080-\uffff](?:[A-Za-z0-9\u0080-\uffff-]{0,61}[A-Za-z0-9\u0080-\uffff])?"
_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")


def is_valid_email(address: str | None) -> bool:
    """True for an address of the usual form ``local@domain.tld`` (at most 254 characters)."""
    if not address or len(address) > 254:
        return False
    local, _, _ = address.rpartition("@")
    return len(local) <= 64 and _ADDRESS.fullmatch(address) is not None


class RecordError(ValueError):
    """A record cannot be saved as asked; the message says why in plain words."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def _clean(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _refuse_taken_email(model, address: str | None, own_id: int | None, label: str) -> None:
    """One record per address and type, so that binding an address is unambiguous."""
    if address is None:
        return
    query = select(model.id).where(model.email == address)
    if own_id is not None:
        query = query.where(model.id != own_id)
    if db.session.scalar(query.limit(1)) is not None:
        raise RecordError(f"Another {label} already has the e-mail address {address}.", "email")


def find_organization_by_name(name: str) -> Organization | None:
    """The organization of that name, ignoring case and surrounding spaces."""
    return db.session.scalar(select(Organization).where(
        func.lower(Organization.name) == name.strip().lower()).order_by(Organization.id).limit(1))


def save_contact(contact: Contact | None, *, first_name: str, last_name: str, email: str | None,
                 phone: str | None, organization_name: str | None) -> Contact:
    """Create (``contact`` None) or update a contact; the address is stored normalized."""
    first_name, last_name = (first_name or "").strip(), (last_name or "").strip()
    if not first_name and not last_name:
        raise RecordError("Give the contact a first or a last name.", "first_name")
    address = normalize_email(email)
    _refuse_taken_email(Contact, address, contact.id if contact else None, "contact")
    organization = None
    if _clean(organization_name):
        organization = find_organization_by_name(organization_name)
        if organization is None:
            raise RecordError(f"There is no organization named {organization_name.strip()!r}. Create it first "
                              "under Records → Organizations, or leave the field empty.", "organization")
    if contact is None:
        contact = Contact()
        db.session.add(contact)
    contact.first_name, contact.last_name = first_name, last_name
    contact.email, contact.phone = address, _clean(phone)
    contact.organization = organization
    db.session.commit()
    return contact


def save_organization(org: Organization | None, *, name: str, email: str | None, phone: str | None,
                      website: str | None, domains: str | None = None) -> Organization:
    """Create (``org`` None) or update an organization.

    ``domains``: its mail domains as typed (commas, spaces or one per line), which replace the
    stored list; None leaves the list as it is.
    """
    name = (name or "").strip()
    if not name:
        raise RecordError("Give the organization a name.", "name")
    address = normalize_email(email)
    _refuse_taken_email(Organization, address, org.id if org else None, "organization")
    clean_domains = None
    if domains is not None:
        try:
            clean_domains = DomainRules().clean(domains, org.id if org else None)
        except ValueError as exc:
            raise RecordError(str(exc), "domains") from None
    if org is None:
        org = Organization()
        db.session.add(org)
    org.name, org.email, org.phone, org.website = name, address, _clean(phone), _clean(website)
    if clean_domains is not None:
        set_domains(org, clean_domains)
    try:
        db.session.commit()
    except IntegrityError:  # another save took one of these domains since we checked
        db.session.rollback()
        raise RecordError("One of these domains was just given to another organization; check the list "
                          "and save again.", "domains") from None
    return org


def save_lead(lead: Lead | None, *, name: str, company: str | None, email: str | None,
              status: str | None) -> Lead:
    """Create (``lead`` None) or update a lead."""
    name = (name or "").strip()
    if not name:
        raise RecordError("Give the lead a name.", "name")
    address = normalize_email(email)
    _refuse_taken_email(Lead, address, lead.id if lead else None, "lead")
    if lead is None:
        lead = Lead()
        db.session.add(lead)
    lead.name, lead.company, lead.email = name, _clean(company), address
    lead.status = _clean(status) or "new"
    db.session.commit()
    return lead


def set_ticket_status(ticket: Ticket, status: str) -> bool:
    """Change a ticket's status, audited; False when it already had that status."""
    if status not in TICKET_STATUSES:
        raise RecordError(f"Unknown ticket status {status!r}.", "status")
    if ticket.status == status:
        return False
    audit.record("ticket.status", f"ticket {ticket.number or ticket.id}", f"status: {ticket.status} → {status}")
    ticket.status = status
    ticket.updated_at = utcnow()
    db.session.commit()
    return True
