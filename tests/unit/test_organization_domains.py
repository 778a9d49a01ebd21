"""An organization's mail domains on its form and page; the public domains on the mail configuration page."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailSettings, Organization, OrganizationDomain
from app.services import record_delete, records
from app.services.records import RecordError
from app.services.records_import import RunOptions, import_records
from tests import factories
from tests.unit.scanning.store_helpers import links_of, make_account, msg, store


def _post_organization(client, url: str, **fields):
    token = factories.csrf_from(client.get(url))
    data = {"name": "Acme", "email": "", "phone": "", "website": "", "domains": "", "csrf_token": token}
    return client.post(url, data={**data, **fields})


def test_domains_entered_on_the_form_are_saved_and_shown(client, auth, admin):
    auth.login("admin")
    response = _post_organization(client, "/records/organizations/new", domains="Acme.TEST, @acme-mail.test\nacme.test")
    assert response.status_code == 302
    org = db.session.scalars(select(Organization)).one()
    assert org.domain_names == ["acme-mail.test", "acme.test"]
    page = client.get(f"/records/organizations/{org.id}")
    assert b"Mail domains" in page.data and b"acme-mail.test" in page.data and b"acme.test" in page.data
    org.domains.append(OrganizationDomain(domain="xn--bcher-kva.test"))
    db.session.commit()
    assert "bücher.test (xn--bcher-kva.test)" in client.get(f"/records/organizations/{org.id}").get_data(as_text=True)
    org.domains.pop()
    db.session.commit()
    edit = client.get(f"/records/organizations/{org.id}/edit")
    assert b"acme-mail.test\nacme.test</textarea>" in edit.data
    # Editing replaces the list: one kept, one removed, one added.
    response = _post_organization(client, f"/records/organizations/{org.id}/edit", domains="acme.test eu.acme.test")
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(Organization, org.id).domain_names == ["acme.test", "eu.acme.test"]
    assert len(db.session.scalars(select(OrganizationDomain)).all()) == 2


def test_a_domain_made_public_later_is_marked_as_not_binding_on_the_page(client, auth, admin):
    org = records.save_organization(None, name="Acme", email=None, phone=None, website=None,
                                    domains="acme.test, acme-mail.test")
    auth.login("admin")
    assert "Not binding" not in client.get(f"/records/organizations/{org.id}").get_data(as_text=True)
    settings = MailSettings.get()
    settings.public_domains += "\nacme-mail.test"
    db.session.commit()
    page = client.get(f"/records/organizations/{org.id}").get_data(as_text=True)
    assert "Not binding: acme-mail.test is now on the public or our own domains list" in page


def test_the_organization_list_finds_an_organization_by_its_domain(client, auth, admin):
    records.save_organization(None, name="Acme", email=None, phone=None, website=None, domains="acme-mail.test")
    records.save_organization(None, name="Globex", email=None, phone=None, website=None, domains="globex.test")
    auth.login("admin")
    page = client.get("/records/organizations?q=acme-mail").get_data(as_text=True)
    assert ">Acme<" in page and "Globex" not in page


@pytest.mark.parametrize(("domains", "words"), [
    ("gmail.com", "gmail.com is a public mail domain"),
    ("acme.test, eu.outlook.com", "eu.outlook.com is a public mail domain"),
    ("corp.test", "corp.test is one of our own domains"),
    ("globex.test", "globex.test already belongs to the organization Globex"),
    ("jane@acme.test", "is an e-mail address: write only the part after the @, e.g. acme.test"),
    ("https://acme.test", "no https://"),
])
def test_domains_that_cannot_be_an_organizations_are_refused_in_words(client, auth, admin, domains, words):
    settings = MailSettings.get()
    settings.internal_domains = "corp.test"
    globex = factories.organization(name="Globex", email=None)
    db.session.add(OrganizationDomain(organization_id=globex.id, domain="globex.test"))
    db.session.commit()
    auth.login("admin")
    response = _post_organization(client, "/records/organizations/new", domains=domains)
    assert response.status_code == 200
    assert words in response.get_data(as_text=True)
    assert db.session.scalar(select(Organization).where(Organization.name == "Acme")) is None
    assert db.session.scalars(select(OrganizationDomain.domain)).all() == ["globex.test"]


def test_the_service_keeps_the_list_when_no_domains_are_given(app):
    org = records.save_organization(None, name="Acme", email=None, phone=None, website=None, domains="acme.test")
    records.save_organization(org, name="Acme Inc.", email=None, phone=None, website=None)
    assert org.domain_names == ["acme.test"]
    with pytest.raises(RecordError) as refused:
        records.save_organization(None, name="Other", email=None, phone=None, website=None, domains="ACME.test")
    assert refused.value.field == "domains" and "already belongs to the organization Acme Inc." in str(refused.value)


def test_deleting_an_organization_deletes_its_domains_and_says_so(app):
    org = records.save_organization(None, name="Acme", email=None, phone=None, website=None,
                                    domains="acme.test, acme-mail.test")
    effect = record_delete.impact("organization", org.id)
    assert ("New mail from or to addresses at acme-mail.test, acme.test is no longer related to an organization "
            "(the domains are deleted with it).") in effect.consequences()
    record_delete.delete_record("organization", org.id)
    assert db.session.scalars(select(OrganizationDomain)).all() == []
    # The domain is free again for another organization.
    other = records.save_organization(None, name="Acme 2", email=None, phone=None, website=None, domains="acme.test")
    assert other.domain_names == ["acme.test"]


def test_the_organization_page_shows_mail_from_a_new_person_at_its_domain(client, auth, admin):
    org = records.save_organization(None, name="Acme", email="info@acme.test", phone=None, website=None,
                                    domains="acme.test")
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="new.person@acme.test", subject="Our first order"),
                    msg(2, frm="someone@gmail.com", subject="Not from Acme")])
    auth.login("admin")
    page = client.get(f"/records/organizations/{org.id}").get_data(as_text=True)
    assert "Our first order" in page and "new.person@acme.test" in page
    assert "Not from Acme" not in page


def test_public_domains_are_edited_on_the_mail_configuration_page(client, auth, admin):
    auth.login("admin")
    page = client.get("/admin/mail-config")
    assert b"Public mail domains" in page.data and b"gmail.com" in page.data
    token = factories.csrf_from(page)
    response = client.post("/admin/mail-config",
                           data={"csrf_token": token, "public_domains": "Gmail.com, freemail.test"})
    assert response.status_code == 302
    settings = db.session.get(MailSettings, 1)
    db.session.refresh(settings)
    assert settings.public_domains == "freemail.test\ngmail.com"
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "mail_config.update")).one()
    assert "added freemail.test" in entry.details and "removed" in entry.details and "outlook.com" in entry.details
    # freemail.test is public now: no organization can have it, and mail there does not bind.
    with pytest.raises(RecordError, match="freemail.test is a public mail domain"):
        records.save_organization(None, name="Acme", email=None, phone=None, website=None, domains="freemail.test")


def test_a_bad_public_domain_is_refused_with_a_message(client, auth, admin):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/mail-config"))
    response = client.post("/admin/mail-config", data={"csrf_token": token, "public_domains": "gmail.com, not ok!"})
    assert response.status_code == 200
    assert "Each entry of the public domains must be a domain such as gmail.com." in response.get_data(as_text=True)
    settings = db.session.get(MailSettings, 1)
    db.session.refresh(settings)
    assert "outlook.com" in settings.public_domains  # unchanged


def test_organizations_are_imported_with_their_domains_and_bad_ones_skipped_by_line(app):
    globex = factories.organization(name="Globex", email=None)
    db.session.add(OrganizationDomain(organization_id=globex.id, domain="globex.test"))
    db.session.commit()
    csv_text = (
        "name,email,domains\n"
        "Acme,info@acme.test,\"Acme.test, acme-mail.test\"\n"   # 2: good, two domains
        "Initech,,initech.test\n"                                 # 3: good
        "Freemail Fans,,gmail.com\n"                              # 4: public domain
        "Acme Copy,,acme.test\n"                                  # 5: already on line 2
        "Globex Copy,,globex.test\n"                              # 6: a stored organization has it
        "Broken,,not a domain!\n"                                 # 7: no domain
        "Bad Mail,not-an-address,badmail.test\n"                  # 8: invalid e-mail: its domain stays free
        "Bad Mail Again,,badmail.test\n"                          # 9: good
        "Umlaut,,bücher.test\n"                                   # 10: good, stored in IDNA form
        "No Domains,,\n"                                          # 11: good, none
    )
    report = import_records("organizations", csv_text, chunk_size=2)
    reasons = {row.line: row.reason for row in report.skipped}
    assert report.imported == 5, reasons
    assert reasons[4].startswith("domains: gmail.com is a public mail domain")
    assert reasons[5] == "duplicate domain acme.test (already on line 2)"
    assert reasons[6] == "domains: globex.test already belongs to the organization Globex."
    assert reasons[7].startswith("domains: 'not' is not a domain name")
    assert reasons[8] == "invalid e-mail 'not-an-address'"
    owners = dict(db.session.execute(select(OrganizationDomain.domain, Organization.name)
                                     .join(Organization, Organization.id == OrganizationDomain.organization_id)).all())
    assert owners == {"acme.test": "Acme", "acme-mail.test": "Acme", "initech.test": "Initech",
                      "globex.test": "Globex", "badmail.test": "Bad Mail Again", "xn--bcher-kva.test": "Umlaut"}
    # The imported domains bind.
    account = make_account(actions="create_email,bind_email")
    store(account, [msg(1, frm="someone@acme-mail.test")])
    acme = db.session.scalar(select(Organization).where(Organization.name == "Acme"))
    assert links_of(1) == {("organization", acme.id)}


def test_a_dry_run_of_an_import_checks_domains_and_stores_none(app):
    report = import_records("organizations", "name,domains\nAcme,acme.test\nPublic,outlook.com\n",
                            options=RunOptions(dry_run=True))
    assert report.imported == 1 and [r.line for r in report.skipped] == [3]
    assert db.session.scalars(select(OrganizationDomain)).all() == []
    assert db.session.scalars(select(Organization)).all() == []
