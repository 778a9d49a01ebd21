"""A small world where every URL parameter of the URL map names a real row (id 1 where it can).

Two mailboxes: "Granted" (alice may open it) and "Secret" (nobody but the
administrators may read it). Every record type is related to one e-mail of
each mailbox, so that a page listing a record's mail would show the secret one
if the access rule were missing. The ticket was made from the granted mailbox;
a second ticket, made from the secret one, is also related to the granted
e-mail (a reply that arrived in another mailbox).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.extensions import db
from app.models import IgnoreFilter, ScanRun
from app.models.base import utcnow
from tests import factories

SECRET_SUBJECT = "SECRET-merger-plans-7f3a"
SECRET_BODY = "secret-body-text-91c2"
SECRET_HTML = "<p>secret-html-body-5d0e</p>"
SECRET_ATTACHMENT = b"secret-attachment-bytes-0b77"
SECRET_FILENAME = "secret-report-44ad.pdf"
GRANTED_SUBJECT = "Granted-hello-31ee"
SECRET_TICKET_SUBJECT = "Secret-ticket-layoffs-2c9d"
SECRET_REQUESTER = "whistleblower-8e1f@rival.test"


@dataclass
class World:
    admin: object
    alice: object
    granted: object  # MailAccount alice may open
    secret: object  # MailAccount she may not
    contact: object
    organization: object
    lead: object
    ticket: object
    secret_ticket: object  # made from the secret mailbox
    granted_email: object
    secret_email: object
    secret_attachment_id: int
    granted_attachment_id: int
    run: object
    filter: object


def build() -> World:
    """Create the world; the admin is user 1, alice user 2, the granted mailbox and its mail id 1."""
    admin = factories.user(username="admin", admin=True)
    alice = factories.user(username="alice")
    granted = factories.mail_account(name="Granted", login="granted@corp.test")
    secret = factories.mail_account(name="Secret", login="secret@corp.test")
    factories.grant(alice, granted)
    org = factories.organization()
    contact = factories.contact(org=org)
    lead = factories.lead()
    ticket = factories.ticket(contact=contact, org=org, account=granted)
    secret_ticket = factories.ticket(subject=SECRET_TICKET_SUBJECT, requester=SECRET_REQUESTER, account=secret)
    related = (contact, org, lead, ticket, alice)
    granted_email = factories.email(granted, subject=GRANTED_SUBJECT, related=(*related, secret_ticket),
                                    attachments=[{"filename": "hello.txt", "content_type": "text/plain",
                                                  "data": b"hello"}])
    secret_email = factories.email(secret, subject=SECRET_SUBJECT, body_text=SECRET_BODY, body_html=SECRET_HTML,
                                   related=related,
                                   attachments=[{"filename": SECRET_FILENAME, "content_type": "application/pdf",
                                                 "data": SECRET_ATTACHMENT}])
    run = ScanRun(account_id=granted.id, status="running", started_at=utcnow())
    rule = IgnoreFilter(field="subject", match="contains", value="newsletter")
    db.session.add_all([run, rule])
    db.session.commit()
    return World(admin=admin, alice=alice, granted=granted, secret=secret, contact=contact, organization=org,
                 lead=lead, ticket=ticket, secret_ticket=secret_ticket, granted_email=granted_email,
                 secret_email=secret_email,
                 secret_attachment_id=secret_email.attachments[0].id,
                 granted_attachment_id=granted_email.attachments[0].id, run=run, filter=rule)
