"""Deleting contacts, organizations and leads: the confirm page says what happens, e-mails stay, audited.

Run on SQLite and PostgreSQL, through the real pages with CSRF on.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AuditEntry, Contact, Email, EmailLink, Lead, Organization, Ticket
from app.services import record_delete
from tests import factories


@pytest.fixture
def acme(app):
    """Acme with two contacts; Jane related to 3 e-mails, Acme to 2; a ticket of Jane's at Acme."""
    org = factories.organization()
    jane = factories.contact(org=org)
    factories.contact(email="john@acme.test", first="John", org=org)
    account = factories.mail_account()
    for n in range(3):
        factories.email(account, subject=f"Hello {n}", related=(jane, org) if n < 2 else (jane,))
    ticket = factories.ticket(contact=jane, org=org)
    return org, jane, ticket


def _links(kind: str, record_id: int) -> int:
    return db.session.scalar(select(func.count()).select_from(EmailLink).where(
        EmailLink.record_type == kind, EmailLink.record_id == record_id))


def _admin_page(client, auth, url):
    auth.login("admin")
    return client.get(url)


def test_the_impact_of_deleting_an_organization_in_words(acme):
    org, _, _ = acme
    effect = record_delete.impact("organization", org.id)
    assert (effect.emails, effect.contacts, effect.tickets) == (2, 2, 1)
    assert effect.consequences() == [
        "2 e-mails stay stored but are no longer related to this organization.",
        "2 contacts lose their organization (the contacts stay).",
        "1 ticket loses its organization (the tickets stay).",
        "New mail from or to info@acme.test is no longer related to an organization.",
    ]


def test_deleting_an_organization_keeps_its_mail_contacts_and_tickets(acme):
    org_id, jane_id, ticket_id = (r.id for r in acme)
    record_delete.delete_record("organization", org_id)
    assert db.session.get(Organization, org_id) is None
    assert _links("organization", org_id) == 0 and _links("contact", jane_id) == 3
    assert db.session.scalar(select(func.count()).select_from(Email)) == 3
    assert db.session.get(Contact, jane_id).organization_id is None
    assert db.session.get(Ticket, ticket_id).organization_id is None
    assert db.session.get(Ticket, ticket_id).contact_id == jane_id
    (entry,) = db.session.scalars(select(AuditEntry))
    assert entry.action == "organization.delete" and "2 contacts lose" in entry.details


def test_deleting_a_contact_detaches_its_ticket_and_links_only(acme):
    org_id, jane_id, ticket_id = (r.id for r in acme)
    effect = record_delete.delete_record("contact", jane_id)
    assert effect.consequences()[0] == "3 e-mails stay stored but are no longer related to this contact."
    assert _links("contact", jane_id) == 0 and _links("organization", org_id) == 2
    assert db.session.get(Ticket, ticket_id).contact_id is None
    assert db.session.get(Organization, org_id) is not None


def test_a_lead_without_mail_says_so(app):
    lead_id = factories.lead().id
    assert record_delete.impact("lead", lead_id).consequences()[0] == "No e-mail is related to this lead."
    record_delete.delete_record("lead", lead_id)
    assert db.session.get(Lead, lead_id) is None


def test_the_confirm_page_states_the_links_and_post_deletes(client, auth, admin, acme):
    org_id, jane_id = acme[0].id, acme[1].id
    page = _admin_page(client, auth, f"/records/contacts/{jane_id}/delete")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "3 e-mails stay stored but are no longer related to this contact." in text
    assert "1 ticket loses its contact (the tickets stay)." in text
    assert factories.csrf_refused(client.post(f"/records/contacts/{jane_id}/delete"))
    assert db.session.get(Contact, jane_id) is not None
    answer = client.post(f"/records/contacts/{jane_id}/delete", data={"csrf_token": factories.csrf_from(page)},
                         follow_redirects=True)
    assert answer.status_code == 200 and b"Contact Jane Doe deleted." in answer.data
    db.session.expire_all()
    assert db.session.get(Contact, jane_id) is None
    assert client.get(f"/records/contacts/{jane_id}/delete").status_code == 404
    # The detail pages offer the button to administrators.
    assert f"/records/organizations/{org_id}/delete".encode() in client.get(f"/records/organizations/{org_id}").data


def test_ordinary_users_get_403_and_no_button(client, auth, admin, user, acme):
    org, jane, _ = acme
    lead = factories.lead()
    auth.login("alice")
    token = factories.csrf_from(client.get("/"))
    for url in (f"/records/contacts/{jane.id}/delete", f"/records/organizations/{org.id}/delete",
                f"/records/leads/{lead.id}/delete"):
        assert client.get(url).status_code == 403
        assert client.post(url, data={"csrf_token": token}).status_code == 403
    assert b"/delete" not in client.get(f"/records/contacts/{jane.id}").data
    db.session.expire_all()
    assert db.session.get(Contact, jane.id) and db.session.get(Organization, org.id) and db.session.get(Lead, lead.id)
