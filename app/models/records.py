"""The CRM records mail is related to: organizations, contacts, leads, tickets."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow
from app.scanner.domains import readable_domain

TICKET_STATUSES = ("open", "in_progress", "waiting", "answered", "closed")
TICKET_PREFIX = "TT-"


def ticket_number(ticket_id: int) -> str:
    """The human number of a ticket, e.g. ``TT-000042``."""
    return f"{TICKET_PREFIX}{ticket_id:06d}"


class Organization(db.Model):
    __tablename__ = "organizations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # normalized
    phone: Mapped[str | None] = mapped_column(String(50))
    website: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    domains: Mapped[list[OrganizationDomain]] = relationship(
        back_populates="organization", cascade="all, delete-orphan", order_by="OrganizationDomain.domain")

    @property
    def domain_names(self) -> list[str]:
        """The organization's mail domains, sorted."""
        return [d.domain for d in self.domains]

    @property
    def readable_domains(self) -> list[str]:
        """The mail domains as people write them: ``bücher.test (xn--bcher-kva.test)`` for an IDNA one."""
        shown = []
        for name in self.domain_names:
            readable = readable_domain(name)
            shown.append(name if readable == name else f"{readable} ({name})")
        return shown


class OrganizationDomain(db.Model):
    """A mail domain of an organization: mail from or to any address there binds to it.

    ``domain`` is lower-case ASCII (IDNA for international names, ``app.scanner.domains``) and
    unique: a domain binds to one organization at most.
    """

    __tablename__ = "organization_domains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organization_id: Mapped[int] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)

    organization: Mapped[Organization] = relationship(back_populates="domains")


class Contact(db.Model):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # normalized
    phone: Mapped[str | None] = mapped_column(String(50))
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    organization: Mapped[Organization | None] = relationship()

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or (self.email or f"Contact {self.id}")


class Lead(db.Model):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254), index=True)  # normalized
    status: Mapped[str] = mapped_column(String(30), default="new")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Ticket(db.Model):
    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Set right after the first flush from the id (see ticket_number); unique so lookups are one probe.
    number: Mapped[str | None] = mapped_column(String(20), unique=True)
    subject: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"), index=True)
    organization_id: Mapped[int | None] = mapped_column(
        ForeignKey("organizations.id", ondelete="SET NULL"), index=True)
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The closed ticket this one follows up, when mail to a closed ticket opens a new one.
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    # Who wrote first, so that only that person (or their organization, or our users) can add to it.
    requester_email: Mapped[str | None] = mapped_column(String(254))
    # The mailbox whose mail created the ticket; who may see the ticket follows that mailbox's grants
    # (app/services/ticket_access.py). None: not made from a mailbox, or the mailbox was deleted.
    account_id: Mapped[int | None] = mapped_column(ForeignKey("mail_accounts.id", ondelete="SET NULL"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact | None] = relationship()
    organization: Mapped[Organization | None] = relationship()
    assignee = relationship("User")
    parent: Mapped[Ticket | None] = relationship(remote_side=[id])
