"""Record pages: lists with pagination and search, related e-mails, ticket status, contact forms."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event

from app.extensions import db
from app.models import Contact, Ticket
from tests import factories


@pytest.fixture
def logged_in_admin(client, auth, admin):
    auth.login("admin")
    return admin


@contextmanager
def count_queries():
    """Count the SQL statements sent while the block runs."""
    statements: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def test_record_pages_need_login(client):
    for url in ("/records/contacts", "/records/organizations", "/records/leads", "/records/tickets",
                "/records/emails", "/records/users"):
        response = client.get(url)
        assert response.status_code == 302 and "/login" in response.headers["Location"], url


def test_contact_list_paginates_and_searches(app, client, logged_in_admin):
    app.config["PER_PAGE"] = 5
    for i in range(12):
        db.session.add(Contact(first_name=f"Person{i:02d}", last_name="Zed", email=f"p{i}@x.test"))
    db.session.commit()
    first = client.get("/records/contacts")
    assert first.status_code == 200
    assert b"Page 1 of 3" in first.data
    assert b"Person00" in first.data and b"Person05" not in first.data
    third = client.get("/records/contacts?page=3")
    assert b"Person11" in third.data and b"Person00" not in third.data
    found = client.get("/records/contacts?q=person07")
    assert b"Person07" in found.data and b"Person08" not in found.data


@pytest.mark.parametrize("path,text", [
    ("/records/organizations", b"Acme"), ("/records/leads", b"Prospect"), ("/records/tickets", b"Printer on fire"),
    ("/records/users", b"alice"),
])
def test_other_lists_render(client, logged_in_admin, user, path, text):
    org = factories.organization()
    factories.lead()
    factories.ticket(contact=factories.contact(org=org), org=org)
    response = client.get(path)
    assert response.status_code == 200
    assert text in response.data


def test_ticket_list_filters_by_status_and_number(client, logged_in_admin):
    open_one = factories.ticket(subject="Still broken")
    factories.ticket(subject="All fixed", status="closed")
    page = client.get("/records/tickets?status=closed")
    assert b"All fixed" in page.data and b"Still broken" not in page.data
    page = client.get(f"/records/tickets?q={open_one.number}")
    assert b"Still broken" in page.data and b"All fixed" not in page.data


def test_contact_detail_lists_related_emails_newest_first(client, logged_in_admin):
    contact = factories.contact()
    account = factories.mail_account()
    factories.email(account, subject="Older message", related=[contact])
    factories.email(account, subject="Newer message", related=[contact])
    factories.email(account, subject="Someone else's")
    page = client.get(f"/records/contacts/{contact.id}")
    assert page.status_code == 200
    body = page.data
    assert b"Newer message" in body and b"Older message" in body
    assert body.index(b"Newer message") < body.index(b"Older message")
    assert b"Someone else" not in body


@pytest.mark.parametrize("kind", ["organization", "lead", "ticket", "user"])
def test_every_record_type_shows_its_emails(client, logged_in_admin, admin, kind):
    record = {"organization": factories.organization, "lead": factories.lead,
              "ticket": factories.ticket, "user": lambda: admin}[kind]()
    factories.email(subject=f"About the {kind}", related=[record])
    url = {"organization": f"/records/organizations/{record.id}", "lead": f"/records/leads/{record.id}",
           "ticket": f"/records/tickets/{record.id}", "user": f"/records/users/{record.id}"}[kind]
    page = client.get(url)
    assert page.status_code == 200
    assert f"About the {kind}".encode() in page.data


def test_related_emails_paginate(app, client, logged_in_admin):
    app.config["PER_PAGE"] = 3
    contact = factories.contact()
    account = factories.mail_account()
    for i in range(7):
        factories.email(account, subject=f"Mail number {i}", related=[contact])
    page = client.get(f"/records/contacts/{contact.id}")
    assert b"Page 1 of 3" in page.data and b"Mail number 6" in page.data and b"Mail number 3" not in page.data
    page = client.get(f"/records/contacts/{contact.id}?page=3")
    assert b"Mail number 0" in page.data and b"Mail number 6" not in page.data


def test_ticket_detail_shows_number_people_and_parent(client, logged_in_admin, admin):
    org = factories.organization()
    contact = factories.contact(org=org)
    parent = factories.ticket(subject="The first time", status="closed", contact=contact, org=org)
    child = factories.ticket(subject="It happened again", contact=contact, org=org)
    child.parent_id, child.assignee_id = parent.id, admin.id
    db.session.commit()
    page = client.get(f"/records/tickets/{child.id}")
    assert page.status_code == 200
    assert f"TT-{child.id:06d}".encode() in page.data
    assert b"Jane Doe" in page.data and b"Acme" in page.data and b"Admin" in page.data
    assert f"/records/tickets/{parent.id}".encode() in page.data


def test_ticket_status_change_needs_csrf_and_a_known_status(client, logged_in_admin):
    ticket = factories.ticket()
    page = client.get(f"/records/tickets/{ticket.id}")
    token = factories.csrf_from(page)
    assert factories.csrf_refused(client.post(f"/records/tickets/{ticket.id}/status", data={"status": "closed"}))
    response = client.post(f"/records/tickets/{ticket.id}/status", data={"status": "bogus", "csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == "open"
    response = client.post(f"/records/tickets/{ticket.id}/status",
                           data={"status": "waiting", "csrf_token": token}, follow_redirects=True)
    assert b"is now waiting" in response.data
    db.session.expire_all()
    assert db.session.get(Ticket, ticket.id).status == "waiting"


def test_ticket_status_changes_are_audited(client, logged_in_admin):
    from app.models import AuditEntry

    ticket = factories.ticket()
    token = factories.csrf_from(client.get(f"/records/tickets/{ticket.id}"))
    for status in ("closed", "closed"):  # the second changes nothing and is not audited
        client.post(f"/records/tickets/{ticket.id}/status", data={"status": status, "csrf_token": token})
    (entry,) = db.session.query(AuditEntry).all()
    assert (entry.action, entry.target, entry.details) == ("ticket.status", f"ticket {ticket.number}",
                                                           "status: open → closed")
    assert entry.user_id == logged_in_admin.id


def test_create_contact_validates_and_normalizes_email(client, logged_in_admin):
    page = client.get("/records/contacts/new")
    token = factories.csrf_from(page)
    bad = client.post("/records/contacts/new", data={"first_name": "Bob", "email": "not-an-address",
                                                     "csrf_token": token})
    assert bad.status_code == 200
    assert b"This is not a valid e-mail address" in bad.data
    assert Contact.query.count() == 0
    nameless = client.post("/records/contacts/new", data={"email": "x@y.test", "csrf_token": token})
    assert b"Give the contact a first or a last name." in nameless.data
    good = client.post("/records/contacts/new", data={"first_name": "Bob", "last_name": "Roe",
                                                      "email": "  Bob.Roe@Example.COM ", "csrf_token": token})
    assert good.status_code == 302
    assert Contact.query.one().email == "bob.roe@example.com"
    again = client.post("/records/contacts/new", data={"first_name": "Bobby", "email": "BOB.ROE@example.com",
                                                       "csrf_token": token})
    assert b"Another contact already has the e-mail address bob.roe@example.com" in again.data
    assert Contact.query.count() == 1


def test_contact_organization_by_name_must_exist(client, logged_in_admin):
    org = factories.organization(name="Globex")
    token = factories.csrf_from(client.get("/records/contacts/new"))
    missing = client.post("/records/contacts/new", data={"first_name": "Hank", "organization": "Initech",
                                                         "csrf_token": token})
    assert b"There is no organization named" in missing.data
    ok = client.post("/records/contacts/new", data={"first_name": "Hank", "organization": "globex ",
                                                    "csrf_token": token})
    assert ok.status_code == 302
    assert Contact.query.one().organization_id == org.id


def test_edit_organization_and_lead(client, logged_in_admin):
    org = factories.organization()
    lead = factories.lead()
    token = factories.csrf_from(client.get(f"/records/organizations/{org.id}/edit"))
    response = client.post(f"/records/organizations/{org.id}/edit", data={
        "name": "Acme Corp", "email": "SALES@ACME.TEST", "csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert (org.name, org.email) == ("Acme Corp", "sales@acme.test")
    empty = client.post(f"/records/leads/{lead.id}/edit", data={"name": " ", "status": "new", "csrf_token": token})
    assert b"Give the lead a name." in empty.data
    response = client.post(f"/records/leads/{lead.id}/edit", data={
        "name": "Big prospect", "company": "Initech", "email": "Boss@Initech.test", "status": "qualified",
        "csrf_token": token})
    assert response.status_code == 302
    db.session.expire_all()
    assert (lead.name, lead.email, lead.status) == ("Big prospect", "boss@initech.test", "qualified")


def test_unknown_records_are_404(client, logged_in_admin):
    for huge in ("999", "9" * 30):
        for url in (f"/records/contacts/{huge}", f"/records/organizations/{huge}", f"/records/leads/{huge}",
                    f"/records/tickets/{huge}", f"/records/users/{huge}", f"/records/emails/{huge}",
                    f"/records/emails/{huge}/body", f"/records/emails/{huge}/original.eml",
                    f"/records/emails/1/attachments/{huge}", f"/records/contacts/{huge}/edit"):
            assert client.get(url).status_code == 404, url


# --- no N+1: the number of statements a page makes does not grow with its rows -----------------

def _statements_for(client, url) -> int:
    """Statements a page makes beyond those of the start page (login, top bar, banners)."""
    with count_queries() as baseline:
        assert client.get("/").status_code == 200
    with count_queries() as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements) - len(baseline)


def test_email_list_makes_a_constant_number_of_queries(client, logged_in_admin):
    accounts = [factories.mail_account(name=f"Box {i}", login=f"box{i}@corp.test") for i in range(3)]
    for i in range(3):
        factories.email(accounts[i % 3], subject=f"few {i}")
    few = _statements_for(client, "/records/emails")
    for i in range(40):
        factories.email(accounts[i % 3], subject=f"many {i}", commit=False)
    db.session.commit()
    many = _statements_for(client, "/records/emails")
    assert many == few
    assert many <= 4  # count + the page's ids + their rows + the mailbox filter's choices


def test_ordinary_users_email_list_is_constant_too(client, auth, user):
    account = factories.mail_account()
    factories.grant(user, account)
    auth.login("alice")
    factories.email(account)
    few = _statements_for(client, "/records/emails")
    for _ in range(30):
        factories.email(account, commit=False)
    db.session.commit()
    assert _statements_for(client, "/records/emails") == few <= 4


def test_ticket_list_makes_a_constant_number_of_queries(client, logged_in_admin, admin):
    def make(n):
        for i in range(n):
            org = factories.organization(name=f"Org {i}", email=None)
            t = factories.ticket(subject=f"t{i}", contact=factories.contact(email=None, first=f"C{i}", org=org),
                                 org=org)
            t.assignee_id = admin.id
        db.session.commit()

    make(2)
    few = _statements_for(client, "/records/tickets")
    make(25)
    many = _statements_for(client, "/records/tickets")
    assert many == few
    assert many <= 2  # count + rows with contact, organization and assignee joined


def test_contact_detail_with_30_related_emails_is_constant(client, logged_in_admin):
    contact = factories.contact()
    accounts = [factories.mail_account(name=f"Box {i}", login=f"box{i}@corp.test") for i in range(3)]
    factories.email(accounts[0], related=[contact])
    few = _statements_for(client, f"/records/contacts/{contact.id}")
    for i in range(29):
        factories.email(accounts[i % 3], related=[contact], commit=False)
    db.session.commit()
    many = _statements_for(client, f"/records/contacts/{contact.id}")
    assert many == few
    assert many <= 4  # contact + count + the page's ids + their rows


@pytest.mark.parametrize("q", ["%", "_", "\\", "a\x00b", "' OR 1=1 --", "x" * 5000, "<script>alert(1)</script>"])
def test_hostile_search_terms_never_fail(client, logged_in_admin, q):
    factories.contact()
    for path in ("/records/contacts", "/records/organizations", "/records/leads", "/records/tickets",
                 "/records/emails", "/records/users"):
        response = client.get(path, query_string={"q": q, "page": "x", "mailbox": "y", "status": q})
        assert response.status_code == 200, path
        huge = client.get(path, query_string={"page": "9" * 30, "mailbox": "9" * 30})
        assert huge.status_code == 200, path
        assert b"<script>alert(1)</script>" not in response.data
