"""Binding by an organization's mail domain, end to end: the demo's mail scanned from the real Dovecot."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.demo import mailbox, report, samples
from app.demo.seed import seed
from app.extensions import db
from app.models import Email, EmailLink, Organization, Ticket
from app.scanning.run import run_scan
from tests.integration.test_scan_dovecot import mail, make_scanner

pytestmark = pytest.mark.integration


def _acme() -> Organization:
    return db.session.scalar(select(Organization).where(Organization.name == "Acme Industries"))


def test_the_demo_seed_gives_acme_its_domain(app):
    seed(with_mail=False)
    assert _acme().domain_names == ["acme.test"]
    seed(with_mail=False)  # idempotent: nothing added twice
    assert _acme().domain_names == ["acme.test"]


def test_mail_from_a_new_person_at_acme_shows_on_acmes_page(app, client, auth, admin, dovecot):
    seed(with_mail=False)
    login, password = dovecot.new_user("domains")
    mailbox.append_samples(samples.sample_messages("TT-000001"), report.SeedReport(), host=dovecot.host,
                           port=dovecot.port, login=login, password=password)
    dovecot.append(login, password, "INBOX", mail(1, frm="someone@gmail.com", subject="Hello from Gmail",
                                                   mid="gmail-1@gmail.com"))
    account = make_scanner(app, dovecot, login, password, assignee=admin)
    run = run_scan(account.id)
    assert run.status == "done", run.message

    acme = _acme()
    ben = db.session.scalar(select(Email).where(Email.from_addr == "ben.carter@acme.test"))
    links = set(db.session.execute(select(EmailLink.record_type, EmailLink.record_id)
                                   .where(EmailLink.email_id == ben.id)))
    assert ("organization", acme.id) in links
    assert not any(t == "contact" for t, _ in links)  # nobody has that address: bound by the domain
    ticket = db.session.scalar(select(Ticket).where(Ticket.requester_email == "ben.carter@acme.test"))
    assert ticket is not None and ticket.organization_id == acme.id and ticket.contact_id is None
    gmail = db.session.scalar(select(Email).where(Email.from_addr == "someone@gmail.com"))
    assert db.session.scalar(select(EmailLink.id).where(EmailLink.email_id == gmail.id,
                                                        EmailLink.record_type == "organization")) is None

    auth.login("admin")
    page = client.get(f"/records/organizations/{acme.id}").get_data(as_text=True)
    assert "New accounts payable contact at Acme" in page and "ben.carter@acme.test" in page
    assert "acme.test" in page and "Hello from Gmail" not in page
