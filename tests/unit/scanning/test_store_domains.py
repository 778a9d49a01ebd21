"""store_batch binds by an organization's mail domain (SQLite and PostgreSQL).

The batch looks the domains up in the same one query as the addresses: the statement count of a
batch stays what it was, whatever the number of organizations, domains or messages.
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from app.extensions import db
from app.models import Email, MailSettings, Organization, OrganizationDomain, Ticket
from app.scanner.types import BatchItem, RunCounters
from app.scanning.store import lookups
from app.scanning.store.batch import load_context, store_batch
from app.services import records
from tests import factories
from tests.unit.scanning.store_helpers import links_of, make_account, msg, store


def _acme(*domains: str) -> Organization:
    org = factories.organization(name="Acme", email="info@acme.test")
    for domain in domains:
        db.session.add(OrganizationDomain(organization_id=org.id, domain=domain))
    db.session.commit()
    return org


def test_mail_from_an_unknown_address_at_the_domain_binds_to_the_organization(app):
    acme = _acme("acme.test")
    account = make_account(actions="create_email,bind_email")
    counters = store(account, [msg(1, frm="new.person@acme.test"), msg(2, frm="New.Person@ACME.test")])
    assert counters.bound == 2
    assert links_of(1) == {("organization", acme.id)}
    assert links_of(2) == {("organization", acme.id)}


def test_mail_to_an_address_at_the_domain_binds_too(app):
    acme = _acme("acme.test")
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="agent@corp.test", to=("new.person@acme.test",))], direction="outgoing")
    store(account, [msg(2, frm="other@elsewhere.test", cc=("someone@acme.test",))])
    assert links_of(1) == {("organization", acme.id)}
    assert links_of(2) == {("organization", acme.id)}


def test_known_contacts_keep_binding_and_other_domains_do_not(app):
    acme = _acme("acme.test")
    globex = factories.organization(name="Globex", email="info@globex.test")
    jane = factories.contact(email="jane@acme.test", org=globex)
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="jane@acme.test"), msg(2, frm="x@eu.acme.test"), msg(3, frm="y@elsewhere.test")])
    assert links_of(1) == {("contact", jane.id), ("organization", globex.id), ("organization", acme.id)}
    assert links_of(2) == set()  # exact domains only: eu.acme.test is not listed
    assert links_of(3) == set()


def test_public_and_our_own_domains_never_bind_even_when_stored_for_an_organization(app):
    # Stored directly, as if the administrator listed gmail.com as public after it was given to Acme.
    _acme("gmail.com", "corp.test")
    settings = MailSettings.get()
    settings.internal_domains = "corp.test"
    db.session.commit()
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="someone@gmail.com"), msg(2, frm="colleague@corp.test")])
    assert links_of(1) == set() and links_of(2) == set()


def test_a_ticket_from_an_unknown_address_at_the_domain_belongs_to_the_organization(app):
    acme = _acme("acme.test")
    account = make_account()
    store(account, [msg(1, frm="new.person@acme.test", subject="Printer broken")])
    ticket = db.session.scalars(select(Ticket)).one()
    assert (ticket.contact_id, ticket.organization_id) == (None, acme.id)
    # A colleague at the same domain may write into it by number.
    store(account, [msg(2, frm="colleague@acme.test", subject=f"Re: [{ticket.number}] Printer broken")])
    assert ("ticket", ticket.id) in links_of(2)
    assert db.session.scalar(select(func.count(Ticket.id))) == 1


def test_domains_saved_on_the_organization_form_bind(app):
    org = records.save_organization(None, name="Initech", email=None, phone=None, website=None,
                                    domains="Initech.TEST\nbücher.test")
    assert org.domain_names == ["initech.test", "xn--bcher-kva.test"]
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="bill@initech.test"), msg(2, frm="anna@bücher.test")])
    assert links_of(1) == {("organization", org.id)} and links_of(2) == {("organization", org.id)}


def test_the_domains_are_looked_up_with_the_addresses_in_one_query(app):
    for i in range(30):
        org = factories.organization(name=f"Org {i}", email=f"info@org{i}.test")
        db.session.add(OrganizationDomain(organization_id=org.id, domain=f"org{i}.test"))
    db.session.commit()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        index = lookups.lookup_addresses({f"p{i}@org{i}.test" for i in range(30)},
                                         {f"org{i}.test" for i in range(30)})
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(statements) == 1
    assert len(index) == 30 and all(refs[0].type == "organization" for refs in index.values())


@pytest.mark.parametrize("size", [5, 60])
def test_query_count_per_batch_with_domains_does_not_grow_with_the_batch(app, size):
    for i in range(25):
        org = factories.organization(name=f"Org {i}", email=None)
        db.session.add(OrganizationDomain(organization_id=org.id, domain=f"org{i}.test"))
        factories.contact(email=f"c{i}@acme.test")
    db.session.commit()
    account = make_account()
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    messages = [msg(i, frm=f"someone{i}@org{i % 25}.test", cc=(f"c{i % 25}@acme.test", "x@gmail.com"),
                    in_reply_to=f"m{i - 1}@acme.test" if i % 3 == 0 else None)
                for i in range(1, size + 1)]
    ctx = load_context(account, MailSettings.get())
    items = [BatchItem(m, "incoming") for m in messages]
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        store_batch(ctx, items, RunCounters())
        db.session.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    # The same bound as without domains (test_store_batch): the domains add no statement.
    assert len([s for s in statements if not s.lstrip().upper().startswith(("SAVEPOINT", "RELEASE"))]) <= 12
    assert db.session.scalar(select(func.count(Email.id))) == size
    assert len([s for s in statements if "organization_domains" in s]) == 1
