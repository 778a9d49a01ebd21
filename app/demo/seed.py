"""Seeding the demo: users, organizations, contacts, leads, a ticket, the demo mail server and mailbox,
and the grants to open it; then the sample mail.

Idempotent: every object is looked up by its natural key first, and a sample message is
appended to the demo mailbox only when no message with its Message-ID is there yet. It
uses the models directly (plus app.crypto for the mailbox password).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select

from app.crypto import app_key, encrypt_secret
from app.demo.mailbox import IMAP, MAILBOX_LOGIN, MAILBOX_NAME, MAILBOX_PASSWORD, SERVER_NAME, SMTP, append_samples
from app.demo.report import SeedReport
from app.demo.samples import TICKET_SUBJECT, sample_messages
from app.extensions import db
from app.models import (
    AutologinGrant,
    Contact,
    Lead,
    MailAccount,
    MailServer,
    MailSettings,
    Organization,
    OrganizationDomain,
    ScanFolder,
    Ticket,
    User,
    ticket_number,
)
from app.models.base import normalize_email

ADMIN = ("admin", "admin-demo-pw")
USER = ("alice", "alice-demo-pw")
OUR_DOMAIN = "corp.test"

ORGANIZATIONS = [
    ("Acme Industries", "info@acme.test", "+1 555 0100", "https://acme.test"),
    ("Globex Ltd", "contact@globex.test", "+44 20 7946 0011", "https://globex.test"),
    ("Initech", "hello@initech.test", "+1 555 0199", "https://initech.test"),
]
# Mail from or to anyone at these domains relates to the organization, known contact or not.
ORGANIZATION_DOMAINS = {"Acme Industries": "acme.test", "Globex Ltd": "globex.test", "Initech": "initech.test"}
CONTACTS = [  # first, last, e-mail, organization
    ("Jane", "Doe", "jane.doe@acme.test", "Acme Industries"),
    ("Maria", "Garcia", "maria.garcia@acme.test", "Acme Industries"),
    ("Bob", "Stone", "bob.stone@globex.test", "Globex Ltd"),
    ("Peter", "Gibbons", "peter@initech.test", "Initech"),
    ("Zoë", "Müller", "zoe.mueller@initech.test", "Initech"),
]
LEADS = [  # name, company, e-mail, status
    ("Tom Newman", "NewCo", "tom@newco.test", "new"),
    ("Lisa Park", "Park Design", "lisa@parkdesign.test", "contacted"),
]


def seed(*, with_mail: bool = True, now: datetime | None = None) -> SeedReport:
    """Create the demo data; then, with ``with_mail``, append the sample messages over IMAP."""
    report = SeedReport()
    admin = _user(*ADMIN, admin=True, full_name="Demo Administrator", email="admin@corp.test", report=report)
    alice = _user(*USER, admin=False, full_name="Alice Martin", email="alice@corp.test", report=report)
    orgs = {name: _organization(name, email, phone, web, report) for name, email, phone, web in ORGANIZATIONS}
    for name, domain in ORGANIZATION_DOMAINS.items():
        _organization_domain(orgs[name], domain, report)
    contacts = {email: _contact(first, last, email, orgs[org], report) for first, last, email, org in CONTACTS}
    for name, company, email, status in LEADS:
        _lead(name, company, email, status, report)
    ticket = _ticket(contacts["jane.doe@acme.test"], alice, report)
    server = _server(report)
    account = _account(server, admin, report)
    for user in (admin, alice):
        _grant(account, user, report)
    settings = MailSettings.get()
    if not settings.internal_domains:
        settings.internal_domains = OUR_DOMAIN
    db.session.commit()
    report.account_id = account.id
    if with_mail:
        append_samples(sample_messages(ticket.number or ticket_number(ticket.id), now=now), report)
    return report


# ----------------------------------------------------------------------------- records


def _user(username: str, password: str, *, admin: bool, full_name: str, email: str, report: SeedReport) -> User:
    user = db.session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, is_admin=admin, full_name=full_name)
        user.set_password(password)
        user.set_email(email)
        db.session.add(user)
        db.session.flush()
        report.note(f"user {username}", True)
    else:
        report.note(f"user {username}", False)
    return user


def _get_or_create(model: type, where: ColumnElement[bool], label: str, report: SeedReport, **values: Any) -> Any:
    """The row matching ``where``, or a new one with ``values``: the seed adds nothing twice."""
    row = db.session.scalar(select(model).where(where))
    created = row is None
    if created:
        row = model(**values)
        db.session.add(row)
        db.session.flush()
    report.note(label, created)
    return row


def _organization(name: str, email: str, phone: str, website: str, report: SeedReport) -> Organization:
    return _get_or_create(Organization, Organization.name == name, f"organization {name}", report,
                          name=name, email=normalize_email(email), phone=phone, website=website)


def _organization_domain(org: Organization, domain: str, report: SeedReport) -> OrganizationDomain:
    return _get_or_create(OrganizationDomain, OrganizationDomain.domain == domain, f"domain {domain}", report,
                          organization_id=org.id, domain=domain)


def _contact(first: str, last: str, email: str, org: Organization, report: SeedReport) -> Contact:
    email = normalize_email(email)
    return _get_or_create(Contact, Contact.email == email, f"contact {email}", report,
                          first_name=first, last_name=last, email=email, organization=org)


def _lead(name: str, company: str, email: str, status: str, report: SeedReport) -> Lead:
    email = normalize_email(email)
    return _get_or_create(Lead, Lead.email == email, f"lead {email}", report,
                          name=name, company=company, email=email, status=status)


def _ticket(contact: Contact, assignee: User, report: SeedReport) -> Ticket:
    ticket = db.session.scalar(select(Ticket).where(Ticket.subject == TICKET_SUBJECT))
    created = ticket is None
    if created:
        ticket = Ticket(subject=TICKET_SUBJECT, status="waiting", contact=contact,
                        organization=contact.organization, assignee_id=assignee.id,
                        requester_email=contact.email)
        db.session.add(ticket)
        db.session.flush()
        ticket.number = ticket_number(ticket.id)
    report.note(f"ticket {ticket.number}", created)
    return ticket


def _server(report: SeedReport) -> MailServer:
    server = db.session.scalar(select(MailServer).where(MailServer.name == SERVER_NAME))
    created = server is None
    if created:
        server = MailServer(name=SERVER_NAME, imap_host=IMAP[0], imap_port=IMAP[1], imap_security="none",
                            smtp_host=SMTP[0], smtp_port=SMTP[1], smtp_security="none", smtp_auth=True,
                            validate_cert=False, auth_method="password", visible=True)
        db.session.add(server)
        db.session.flush()
    report.note(f"mail server {SERVER_NAME}", created)
    return server


def _account(server: MailServer, assignee: User, report: SeedReport) -> MailAccount:
    account = db.session.scalar(select(MailAccount).where(MailAccount.server_id == server.id,
                                                          MailAccount.login == MAILBOX_LOGIN))
    created = account is None
    if created:
        key = app_key()
        account = MailAccount(name=MAILBOX_NAME, server_id=server.id, login=MAILBOX_LOGIN,
                              password_enc=encrypt_secret(key, MAILBOX_PASSWORD),
                              actions="create_email,bind_email,open_ticket,create_ticket",
                              search_fields="contacts,organizations,leads,users",
                              assignee_id=assignee.id, enabled=True)
        account.folders = [ScanFolder(name="INBOX", direction="incoming"),
                           ScanFolder(name="Sent", direction="outgoing")]
        db.session.add(account)
        db.session.flush()
    report.note(f"mailbox {MAILBOX_LOGIN}", created)
    return account


def _grant(account: MailAccount, user: User, report: SeedReport) -> None:
    grant = db.session.scalar(select(AutologinGrant).where(AutologinGrant.account_id == account.id,
                                                           AutologinGrant.user_id == user.id))
    if grant is None:
        db.session.add(AutologinGrant(account_id=account.id, user_id=user.id))
        db.session.flush()
    report.note(f"grant {MAILBOX_LOGIN} to {user.username}", grant is None)


def demo_account_id() -> int | None:
    """The id of the demo mailbox's scanner, or None when the demo is not seeded."""
    return db.session.scalar(
        select(MailAccount.id).join(MailServer).where(MailServer.name == SERVER_NAME,
                                                      MailAccount.login == MAILBOX_LOGIN))
