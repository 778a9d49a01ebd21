"""The demo data behind ``flask --app wsgi demo seed``: users, records, a mailbox with sample mail.

Idempotent: every object is looked up by its natural key first, and a sample message is
appended to the demo mailbox only when no message with its Message-ID is there yet. It
uses the models directly (plus app.crypto for the mailbox password), so it works whatever
services exist around it.
"""

from __future__ import annotations

import imaplib
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from flask import current_app
from sqlalchemy import select

from app.crypto import encrypt_secret
from app.extensions import db
from app.models import (
    AutologinGrant,
    Contact,
    Lead,
    MailAccount,
    MailServer,
    MailSettings,
    Organization,
    ScanFolder,
    Ticket,
    User,
    ticket_number,
)
from app.models.base import normalize_email

ADMIN = ("admin", "admin-demo-pw")
USER = ("alice", "alice-demo-pw")
SERVER_NAME = "Demo Dovecot"
MAILBOX_NAME = "Demo mailbox"
MAILBOX_LOGIN = "demo@corp.test"
MAILBOX_PASSWORD = "demopw"
# The private Dovecot and SMTP sink of scripts/services.sh (same port overrides as the script).
IMAP = ("127.0.0.1", int(os.environ.get("CM_DOVECOT_PORT") or 10143))
SMTP = ("127.0.0.1", int(os.environ.get("CM_SMTP_PORT") or 10025))
OUR_DOMAIN = "corp.test"

ORGANIZATIONS = [
    ("Acme Industries", "info@acme.test", "+1 555 0100", "https://acme.test"),
    ("Globex Ltd", "contact@globex.test", "+44 20 7946 0011", "https://globex.test"),
    ("Initech", "hello@initech.test", "+1 555 0199", "https://initech.test"),
]
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
TICKET_SUBJECT = "Invoice 2026-118 shows the wrong VAT rate"


class DemoError(RuntimeError):
    """The demo could not be set up; the message says what to do."""


@dataclass
class SeedReport:
    """What the seed created this time (and what already existed)."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    appended: int = 0
    already_there: int = 0
    account_id: int | None = None

    def note(self, what: str, was_created: bool) -> None:
        (self.created if was_created else self.existing).append(what)


def seed(*, with_mail: bool = True, now: datetime | None = None) -> SeedReport:
    """Create the demo data; then, with ``with_mail``, append the sample messages over IMAP."""
    report = SeedReport()
    admin = _user(*ADMIN, admin=True, full_name="Demo Administrator", email="admin@corp.test", report=report)
    alice = _user(*USER, admin=False, full_name="Alice Martin", email="alice@corp.test", report=report)
    orgs = {name: _organization(name, email, phone, web, report) for name, email, phone, web in ORGANIZATIONS}
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


def _user(username, password, *, admin, full_name, email, report) -> User:
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


def _get_or_create(model, where, label: str, report, **values):
    """The row matching ``where``, or a new one with ``values``: the seed adds nothing twice."""
    row = db.session.scalar(select(model).where(where))
    created = row is None
    if created:
        row = model(**values)
        db.session.add(row)
        db.session.flush()
    report.note(label, created)
    return row


def _organization(name, email, phone, website, report) -> Organization:
    return _get_or_create(Organization, Organization.name == name, f"organization {name}", report,
                          name=name, email=normalize_email(email), phone=phone, website=website)


def _contact(first, last, email, org, report) -> Contact:
    email = normalize_email(email)
    return _get_or_create(Contact, Contact.email == email, f"contact {email}", report,
                          first_name=first, last_name=last, email=email, organization=org)


def _lead(name, company, email, status, report) -> Lead:
    email = normalize_email(email)
    return _get_or_create(Lead, Lead.email == email, f"lead {email}", report,
                          name=name, company=company, email=email, status=status)


def _ticket(contact: Contact, assignee: User, report) -> Ticket:
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


def _server(report) -> MailServer:
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


def _account(server: MailServer, assignee: User, report) -> MailAccount:
    account = db.session.scalar(select(MailAccount).where(MailAccount.server_id == server.id,
                                                          MailAccount.login == MAILBOX_LOGIN))
    created = account is None
    if created:
        key = current_app.config["MAIL_ENCRYPTION_KEY"]
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


def _grant(account: MailAccount, user: User, report) -> None:
    grant = db.session.scalar(select(AutologinGrant).where(AutologinGrant.account_id == account.id,
                                                           AutologinGrant.user_id == user.id))
    if grant is None:
        db.session.add(AutologinGrant(account_id=account.id, user_id=user.id))
        db.session.flush()
    report.note(f"grant {MAILBOX_LOGIN} to {user.username}", grant is None)


# ----------------------------------------------------------------------------- sample mail


@dataclass
class Sample:
    """A sample message and the folder it belongs in."""

    folder: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


def _mail(sender, to, subject, body, *, when, msgid, cc=None, in_reply_to=None, references=None,
          headers=None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{msgid}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
        msg["References"] = " ".join(f"<{ref}>" for ref in (references or [in_reply_to]))
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg


def _tiny_pdf(text: str) -> bytes:
    """A small valid one-page PDF showing ``text`` (so the attachment opens in a viewer)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def sample_messages(ticket_no: str, *, now: datetime | None = None) -> list[Sample]:
    """The demo mailbox's messages: 12 in INBOX, 2 in Sent, dated over the last days."""
    now = now or datetime.now(UTC)

    def ago(days=0, hours=0, minutes=0):
        return now - timedelta(days=days, hours=hours, minutes=minutes)

    me = "Corp Support <demo@corp.test>"
    samples = [
        Sample("INBOX", _mail(
            "Jane Doe <jane.doe@acme.test>", me, "Order #4711: delivery date?",
            "Hello,\n\nwe ordered 12 standing desks last week (order #4711). Could you tell us when\n"
            "they will be delivered? Our office move is planned for the 14th.\n\nThanks,\nJane Doe\n"
            "Facilities, Acme Industries\n",
            when=ago(days=4, hours=3), msgid="demo-order-4711@acme.test")),
        Sample("Sent", _mail(
            me, "Jane Doe <jane.doe@acme.test>", "Re: Order #4711: delivery date?",
            "Hi Jane,\n\nthe desks leave our warehouse on Monday; delivery is planned for Wednesday\n"
            "between 9 and 12. You will get a tracking link by e-mail.\n\nBest regards,\nCorp Support\n",
            when=ago(days=4, hours=1), msgid="demo-order-4711-answer@corp.test",
            in_reply_to="demo-order-4711@acme.test")),
        Sample("INBOX", _mail(
            "Jane Doe <jane.doe@acme.test>", me, "Re: Re: Order #4711: delivery date?",
            "Perfect, Wednesday morning works for us. Please ask the driver to use the\n"
            "loading dock at the back of building B.\n\nJane\n",
            when=ago(days=3, hours=20), msgid="demo-order-4711-thanks@acme.test",
            in_reply_to="demo-order-4711-answer@corp.test",
            references=["demo-order-4711@acme.test", "demo-order-4711-answer@corp.test"])),
        Sample("INBOX", _mail(
            "Jane Doe <jane.doe@acme.test>", me, f"Re: [{ticket_no}] {TICKET_SUBJECT}",
            "Hello again,\n\nwe still have not received the corrected invoice. The VAT rate should be\n"
            "7 %, not 19 %. Could you please send a corrected copy?\n\nJane\n",
            when=ago(days=2, hours=6), msgid="demo-invoice-vat-followup@acme.test")),
        Sample("INBOX", _mail(
            "Maria Garcia <maria.garcia@acme.test>", me, "Automatic reply: Order #4711",
            "I am out of the office until Monday and have limited access to e-mail.\n"
            "For urgent matters, please contact jane.doe@acme.test.\n",
            when=ago(days=2, hours=5), msgid="demo-ooo-maria@acme.test",
            headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"})),
        Sample("INBOX", _mail(
            "Tom Newman <tom@newco.test>", me, "Support plans for a 40-person team",
            "Hi,\n\nwe are a 40-person agency looking for a support contract with a 4-hour\n"
            "response time. Could you send me your plans and prices?\n\nTom Newman\nCOO, NewCo\n",
            when=ago(days=1, hours=22), msgid="demo-lead-newco@newco.test")),
        Sample("INBOX", _mail(
            "Alice Martin <alice@corp.test>", me, "Team lunch on Friday",
            "Hi all,\n\nlunch on Friday at 12:30 in the canteen, the sales team joins us.\n\nAlice\n",
            when=ago(days=1, hours=8), msgid="demo-internal-lunch@corp.test")),
        Sample("INBOX", _mail(
            "Zoë Müller <zoe.mueller@initech.test>", me, "Änderung der Lieferadresse für Bestellung 5120",
            "Guten Tag,\n\nbitte liefern Sie die Bestellung 5120 an unsere neue Adresse:\n"
            "Initech GmbH, Königstraße 12, 70173 Stuttgart.\n\nMit freundlichen Grüßen\nZoë Müller\n",
            when=ago(days=1, hours=4), msgid="demo-address-change@initech.test")),
        Sample("INBOX", _mail(
            "Sam Unknown <sam@freemail.test>", me, f"Question about [{ticket_no}]",
            "Hi, I saw this ticket number on a colleague's screen. Can you tell me the\n"
            "status? Also, do you ship to Canada?\n\nSam\n",
            when=ago(hours=20), msgid="demo-stranger@freemail.test")),
    ]

    quote = _mail(
        "Bob Stone <bob.stone@globex.test>", me, "Quote request: 40 office chairs",
        "Hello,\n\nplease find attached our specification for 40 ergonomic office chairs.\n"
        "We would need them delivered to our London office by the end of next month.\n\n"
        "Kind regards,\nBob Stone\nProcurement, Globex Ltd\n",
        when=ago(hours=18), msgid="demo-quote-chairs@globex.test")
    quote.add_attachment(_tiny_pdf("Globex: 40 ergonomic office chairs, spec v2"), maintype="application",
                         subtype="pdf", filename="chair-specification.pdf")
    quote.add_attachment(b"item,quantity,colour\nErgo chair model E2,40,graphite\n",
                         maintype="text", subtype="csv", filename="quantities.csv")
    samples.append(Sample("INBOX", quote))
    samples.append(Sample("Sent", _mail(
        me, "Bob Stone <bob.stone@globex.test>", "Re: Quote request: 40 office chairs",
        "Dear Bob,\n\nthank you for the specification. Our quote follows by Thursday.\n\n"
        "Best regards,\nCorp Support\n",
        when=ago(hours=16), msgid="demo-quote-chairs-answer@corp.test",
        in_reply_to="demo-quote-chairs@globex.test")))

    report = _mail(
        "Peter Gibbons <peter@initech.test>", me, "TPS reports: new cover sheet",
        "Hi,\n\nthe new TPS cover sheet is in effect from Monday. Summary below.\n\nPeter\n",
        when=ago(hours=9), msgid="demo-tps-cover@initech.test", cc="Initech Office <hello@initech.test>")
    report.add_alternative(
        "<html><body style=\"font-family:sans-serif\"><p>Hi,</p>"
        "<p>the <b>new TPS cover sheet</b> is in effect from Monday. Summary:</p>"
        "<table border=\"1\" cellpadding=\"4\" style=\"border-collapse:collapse\">"
        "<tr><th>Report</th><th>Due</th><th>Owner</th></tr>"
        "<tr><td>TPS weekly</td><td>Friday</td><td>Peter</td></tr>"
        "<tr><td>TPS monthly</td><td>Last Monday</td><td>Michael</td></tr></table>"
        "<p>Questions? <a href=\"https://initech.test/tps\">See the intranet page</a>.</p>"
        "<p>Peter</p></body></html>", subtype="html")
    samples.append(Sample("INBOX", report))

    news = _mail(
        "Globex News <news@globex.test>", me, "Globex monthly: our new London showroom",
        "Globex monthly news. Read it online: https://globex.test/news\n",
        when=ago(hours=5), msgid="demo-newsletter-2026-11@globex.test",
        headers={"Precedence": "bulk", "List-Unsubscribe": "<https://globex.test/unsubscribe>"})
    news.add_alternative(
        "<html><body><h1>Our new London showroom</h1>"
        "<img src=\"https://globex.test/img/showroom.jpg\" alt=\"showroom\" width=\"400\">"
        "<p>Visit us at 1 Example Street from December.</p>"
        "<p><a href=\"https://globex.test/unsubscribe\">Unsubscribe</a></p></body></html>", subtype="html")
    samples.append(Sample("INBOX", news))

    samples.append(Sample("INBOX", _mail(
        "Lisa Park <lisa@parkdesign.test>", me, "Follow-up on our call",
        "Hi,\n\nthanks for the call today. As discussed, we would like a trial for 5 users\n"
        "starting next week. What do you need from us?\n\nLisa Park\nPark Design\n",
        when=ago(hours=2), msgid="demo-lead-parkdesign@parkdesign.test")))
    samples.append(Sample("INBOX", _mail(
        "Bob Stone <bob.stone@globex.test>", me, "Re: Quote request: 40 office chairs",
        "Thanks! One more thing: can the chairs come with headrests? Bob\n",
        when=ago(minutes=40), msgid="demo-quote-chairs-headrests@globex.test",
        in_reply_to="demo-quote-chairs-answer@corp.test",
        references=["demo-quote-chairs@globex.test", "demo-quote-chairs-answer@corp.test"])))
    return samples


def append_samples(samples: list[Sample], report: SeedReport, *, host: str = IMAP[0], port: int = IMAP[1],
                   login: str = MAILBOX_LOGIN, password: str = MAILBOX_PASSWORD) -> None:
    """Append each sample unless a message with its Message-ID is already in its folder."""
    try:
        conn = imaplib.IMAP4(host, port, timeout=15)
    except OSError as exc:
        raise DemoError(f"The demo mailbox server at {host}:{port} is not reachable ({exc.strerror or exc}). "
                        "Start it with `scripts/services.sh start dovecot`, then run the seed again.") from exc
    try:
        try:
            conn.login(login, password)
        except imaplib.IMAP4.error as exc:
            raise DemoError(f"The demo mailbox {login} refused its password. It should be in "
                            ".state/dovecot/users; `scripts/services.sh start dovecot` adds it.") from exc
        for folder in sorted({s.folder for s in samples}):
            if folder != "INBOX" and conn.select(folder, readonly=True)[0] != "OK":
                conn.create(folder)
                conn.subscribe(folder)
        for sample in samples:
            conn.select(sample.folder, readonly=True)
            typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", sample.message_id)
            if typ == "OK" and data and data[0].split():
                report.already_there += 1
                continue
            when = sample.message["Date"].datetime if sample.message["Date"] else None
            flags = "(\\Seen)" if sample.folder != "INBOX" else None
            typ, data = conn.append(sample.folder, flags, imaplib.Time2Internaldate(when) if when else None,
                                    sample.message.as_bytes())
            if typ != "OK":
                raise DemoError(f"The demo mailbox refused a sample message: {data!r}")
            report.appended += 1
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass



def demo_account_id() -> int | None:
    """The id of the demo mailbox's scanner, or None when the demo is not seeded."""
    return db.session.scalar(
        select(MailAccount.id).join(MailServer).where(MailServer.name == SERVER_NAME,
                                                      MailAccount.login == MAILBOX_LOGIN))
