"""The demo mailbox's sample messages: customers, a lead, a stranger, an auto-reply, a newsletter,
attachments, HTML, and threads that bind to the demo records and ticket."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

# The subject of the demo ticket, which two samples refer to.
TICKET_SUBJECT = "Invoice 2026-118 shows the wrong VAT rate"


@dataclass
class Sample:
    """A sample message and the folder it belongs in."""

    folder: str
    message: EmailMessage

    @property
    def message_id(self) -> str:
        """The Message-ID header, angle brackets included."""
        return str(self.message["Message-ID"])


def _mail(sender: str, to: str, subject: str, body: str, *, when: datetime, msgid: str, cc: str | None = None,
          in_reply_to: str | None = None, references: list[str] | None = None,
          headers: dict[str, str] | None = None) -> EmailMessage:
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
    """The demo mailbox's messages: 13 in INBOX, 2 in Sent, dated over the last days."""
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
            "Ben Carter <ben.carter@acme.test>", me, "New accounts payable contact at Acme",
            "Hello,\n\nI have taken over accounts payable at Acme Industries from Jane. Please send\n"
            "invoices to me from now on.\n\nBen Carter\nAccounts Payable, Acme Industries\n",
            when=ago(days=2, hours=2), msgid="demo-new-person@acme.test")),
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
