"""Contacts, organizations, leads, tickets and e-mails."""

from app.records import contacts, delete, emails, guards, imports, leads, organizations, tickets, users  # noqa: F401  (importing a route module registers its routes)
from app.records.blueprint import bp

__all__ = ["bp"]
