"""Small factories for test data; each commits what it makes."""

from __future__ import annotations

import re

from app.extensions import db
from app.models import Contact, Lead, Organization, Ticket, User, ticket_number

PASSWORD = "correct horse battery"
_CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(response) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(response.data)
    assert match, "no CSRF token on the page"
    return (match.group(1) or match.group(2)).decode()


def user(username="alice", admin=False, email=None, password=PASSWORD) -> User:
    u = User(username=username, is_admin=admin, full_name=username.title())
    u.set_password(password)
    u.set_email(email or f"{username}@corp.test")
    db.session.add(u)
    db.session.commit()
    return u


def organization(name="Acme", email="info@acme.test") -> Organization:
    o = Organization(name=name, email=email)
    db.session.add(o)
    db.session.commit()
    return o


def contact(email="jane@acme.test", first="Jane", last="Doe", org=None) -> Contact:
    c = Contact(first_name=first, last_name=last, email=email, organization=org)
    db.session.add(c)
    db.session.commit()
    return c


def lead(email="lead@prospect.test", name="Prospect") -> Lead:
    le = Lead(name=name, email=email)
    db.session.add(le)
    db.session.commit()
    return le


def ticket(subject="Printer on fire", status="open", contact=None, org=None, requester=None) -> Ticket:
    t = Ticket(subject=subject, status=status, contact=contact, organization=org,
               requester_email=requester or (contact.email if contact else None))
    db.session.add(t)
    db.session.flush()
    t.number = ticket_number(t.id)
    db.session.commit()
    return t
