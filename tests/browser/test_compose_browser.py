"""From a record's page into Roundcube's compose window, and from an e-mail's page to that message, in Chromium.

Real parts only: the Flask app (werkzeug in a thread), Roundcube (php -S) with our plugin, the private
Dovecot, and the SMTP sink of scripts/services.sh (it checks SMTP logins against Dovecot's users and
keeps every message in .state/smtp/messages). Screenshots go to tests/artifacts/; the one of compose
opened from a ticket is the one in docs/ (docs/screenshot-compose-ticket.png).
"""

from __future__ import annotations

import re
import secrets
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.extensions import db
from app.models import Contact, Email, EmailMailbox, Ticket, ticket_number
from tests.autologin_stack import PASSWORD, roundcube_logs, start_stack

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def world(tmp_path_factory, dovecot, smtp_sink):
    stack = start_stack(tmp_path_factory.mktemp("compose-browser"))
    boxes = {}
    for name in ("Sales", "Support"):
        login, password = dovecot.new_user(name.lower())
        account_id = stack.add_mailbox(name, login, password, imap_host=dovecot.host, imap_port=dovecot.port,
                                       smtp_host=smtp_sink.host, smtp_port=smtp_sink.port)
        boxes[name] = {"id": account_id, "login": login, "password": password}
    alice = stack.add_user("alice")
    for box in boxes.values():
        stack.grant(box["id"], alice)
    with stack.app.app_context():
        contact = Contact(first_name="Jane", last_name="Doe", email=f"jane-{secrets.token_hex(3)}@acme.test")
        ticket = Ticket(subject="Printer on fire", requester_email="bob@customer.test",
                        account_id=boxes["Support"]["id"])
        db.session.add_all([contact, ticket])
        db.session.flush()
        ticket.number = ticket_number(ticket.id)
        db.session.commit()
        records = {"contact": contact.id, "contact_email": contact.email, "ticket": ticket.id, "number": ticket.number}
    yield stack, boxes, records
    stack.stop()


@pytest.fixture
def context(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20000)
    yield context
    context.close()


def product_login(context, stack, username):
    page = context.new_page()
    page.goto(f"{stack.flask_url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_selector(".topbar .who")
    return page


def click_into_webmail(context, page, selector):
    """Click a button whose form opens webmail in a new tab; returns that tab once Roundcube's page loaded."""
    with context.expect_page() as new_tab:
        page.click(selector)
    tab = new_tab.value
    tab.wait_for_url(re.compile(r"_task=mail"), timeout=30000)
    tab.wait_for_load_state()
    return tab


def test_write_email_from_a_contact_sends_from_the_chosen_mailbox(world, context, smtp_sink):
    stack, boxes, records = world
    page = product_login(context, stack, "alice")
    page.goto(f"{stack.flask_url}/records/contacts/{records['contact']}")
    # Two granted mailboxes: the user picks the one to write from.
    page.select_option("form.write-email select[name=mailbox]", label="Support")
    page.screenshot(path=str(ARTIFACTS / "compose-1-contact-page.png"))
    compose = click_into_webmail(context, page, "form.write-email button[type=submit]")
    compose.wait_for_selector("#compose-subject")
    assert "_action=compose" in compose.url and records["contact_email"] not in compose.url
    # Logged in to the mailbox picked: its identity is the sender.
    assert boxes["Support"]["login"] in compose.locator("#_from option:checked").inner_text()
    recipients = compose.locator("#_to").input_value()
    assert recipients.startswith("Jane Doe <" + records["contact_email"])
    assert records["contact_email"] in compose.inner_text(".recipient-input")
    compose.screenshot(path=str(ARTIFACTS / "compose-2-filled-in.png"))

    subject = f"Your order {secrets.token_hex(4)}"
    compose.fill("#compose-subject", subject)
    compose.fill("#composebody", "It ships tomorrow.")
    since = time.time() - 1
    compose.click("button.send")
    sent = smtp_sink.wait_for(lambda m: subject in str(m.message["Subject"]), timeout=30, since=since)
    assert sent.auth_user == boxes["Support"]["login"], roundcube_logs(stack)
    assert sent.rcpt_tos == [records["contact_email"]]
    assert boxes["Support"]["login"] in str(sent.message["From"])
    assert records["contact_email"] in str(sent.message["To"])
    compose.screenshot(path=str(ARTIFACTS / "compose-3-sent.png"))


def test_open_in_webmail_shows_that_message(world, context, dovecot):
    stack, boxes, _ = world
    box = boxes["Sales"]
    subject = f"Where is order {secrets.token_hex(3)}?"
    message_id = f"{secrets.token_hex(6)}@customer.test"
    msg = EmailMessage()
    msg["From"] = "Bob <bob@customer.test>"
    msg["To"] = box["login"]
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("I ordered last week and nothing came.")
    dovecot.append(box["login"], box["password"], "INBOX", _other_message(box["login"]))
    uid = dovecot.append(box["login"], box["password"], "INBOX", bytes(msg))
    with stack.app.app_context():
        conn = dovecot.connect(box["login"], box["password"])
        try:
            uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", conn.status("INBOX", "(UIDVALIDITY)")[1][0]).group(1))
        finally:
            conn.logout()
        row = Email(account_id=box["id"], folder="INBOX", uidvalidity=uidvalidity, uid=uid, message_key=message_id,
                    message_id=message_id, subject=subject, from_addr="bob@customer.test", to_addrs=box["login"],
                    body_text="I ordered last week and nothing came.", raw=bytes(msg), size=len(bytes(msg)),
                    mailboxes=[EmailMailbox(account_id=box["id"], message_key=message_id, folder="INBOX",
                                            uidvalidity=uidvalidity, uid=uid)])
        db.session.add(row)
        db.session.commit()
        email_id = row.id
    page = product_login(context, stack, "alice")
    page.goto(f"{stack.flask_url}/records/emails/{email_id}")
    webmail = click_into_webmail(context, page, "form.open-webmail button[type=submit]")
    assert "_action=show" in webmail.url and f"_uid={uid}" in webmail.url
    webmail.wait_for_selector("#messagecontframe, #messagebody", state="attached")
    assert subject in webmail.inner_text("h2.subject")
    assert "nothing came" in webmail.inner_text("#messagebody")
    # Ready to reply: Roundcube's own Reply opens compose to the sender, with the subject.
    webmail.click("a.reply:not(.all):visible")
    webmail.wait_for_selector("#compose-subject")
    assert webmail.input_value("#compose-subject") == f"Re: {subject}"
    assert "bob@customer.test" in webmail.locator("#_to").input_value()
    webmail.screenshot(path=str(ARTIFACTS / "compose-4-reply-from-stored-email.png"))


def test_write_email_from_a_ticket_carries_its_number(world, context):
    stack, boxes, records = world
    page = product_login(context, stack, "alice")
    page.goto(f"{stack.flask_url}/records/tickets/{records['ticket']}")
    page.select_option("form.write-email select[name=mailbox]", label="Support")
    compose = click_into_webmail(context, page, "form.write-email button[type=submit]")
    compose.wait_for_selector("#compose-subject")
    assert compose.input_value("#compose-subject") == f"[{records['number']}] Printer on fire"
    assert "bob@customer.test" in compose.locator("#_to").input_value()
    compose.fill("#composebody", "We are on it: a technician comes this afternoon.")
    compose.screenshot(path=str(ARTIFACTS / "screenshot-compose-ticket.png"))


def _other_message(login: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "someone@else.test"
    msg["To"] = login
    msg["Subject"] = "Another message"
    msg.set_content("Not this one.")
    return bytes(msg)
