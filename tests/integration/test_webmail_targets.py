"""Hand-off targets against the real Flask app, Roundcube with our plugin, and Dovecot.

"Write e-mail" opens Roundcube's compose window with the recipient and subject filled in; "Open in
webmail" opens that very message; a target the plugin does not allow opens the inbox; a message gone
from the server is reported in words before any token is made.
"""

from __future__ import annotations

import html
import re
import secrets
from email.message import EmailMessage

import pytest
import requests
from imap_tools import imap_utf7
from sqlalchemy import func, select

from app.extensions import db
from app.models import AutologinToken, Email, EmailMailbox, Ticket, ticket_number
from tests.autologin_stack import csrf_of, roundcube_logs, start_stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    stack = start_stack(tmp_path_factory.mktemp("targets"))
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def world(stack, dovecot):
    """A Dovecot mailbox granted to alice, a contact, a ticket, and one message stored from the mailbox."""
    login, password = dovecot.new_user("sales")
    account_id = stack.add_mailbox("Sales", login, password, imap_host=dovecot.host, imap_port=dovecot.port)
    stack.grant(account_id, stack.add_user("alice"))
    from app.models import Contact

    with stack.app.app_context():
        contact = Contact(first_name="Jane", last_name="Doe", email="jane@acme.test")
        ticket = Ticket(subject="Printer on fire", requester_email="bob@customer.test", account_id=account_id)
        db.session.add_all([contact, ticket])
        db.session.flush()
        ticket.number = ticket_number(ticket.id)
        db.session.commit()
        ids = {"contact": contact.id, "ticket": ticket.id, "number": ticket.number}
    return {"account_id": account_id, "login": login, "password": password, **ids}


def store_message(stack, dovecot, world, subject: str, folder: str = "INBOX") -> tuple[int, int]:
    """Put a message on the server and store it as a scan would; returns (e-mail id, UID)."""
    message_id = f"{secrets.token_hex(6)}@customer.test"
    msg = EmailMessage()
    msg["From"] = "Bob <bob@customer.test>"
    msg["To"] = world["login"]
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id}>"
    msg.set_content("Where is my order?")
    # The server's name of the folder, in IMAP's modified UTF-7; the product stores it decoded, as scans do.
    on_server = imap_utf7.utf7_encode(folder).decode("ascii")
    uid = dovecot.append(world["login"], world["password"], on_server, bytes(msg))
    conn = dovecot.connect(world["login"], world["password"])
    try:
        typ, data = conn.status(f'"{on_server}"', "(UIDVALIDITY)")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", data[0]).group(1))
    finally:
        conn.logout()
    with stack.app.app_context():
        row = Email(account_id=world["account_id"], folder=folder, uidvalidity=uidvalidity, uid=uid,
                    message_key=message_id, message_id=message_id, subject=subject, from_addr="bob@customer.test",
                    to_addrs=world["login"], raw=bytes(msg), size=len(bytes(msg)),
                    mailboxes=[EmailMailbox(account_id=world["account_id"], message_key=message_id, folder=folder,
                                            uidvalidity=uidvalidity, uid=uid)])
        db.session.add(row)
        db.session.commit()
        return row.id, uid


def hand_off(session: requests.Session, answer: requests.Response) -> requests.Response:
    """Post the hand-off page's token to Roundcube as app.js does, and follow it to the end."""
    assert answer.status_code == 200, answer.text[:500]
    form = re.search(r'<form method="post" action="([^"]+)" data-autosubmit', answer.text)
    token = re.search(r'name="_autologin" value="([A-Za-z0-9_-]+)"', answer.text)
    assert form and token, answer.text[:500]
    return session.post(html.unescape(form.group(1)), data={"_autologin": token.group(1)}, timeout=60)


def click(stack, session, path: str, page: str, **form) -> requests.Response:
    csrf = csrf_of(session.get(f"{stack.flask_url}{page}", timeout=10).text)
    return session.post(f"{stack.flask_url}{path}", data={"csrf_token": csrf, **form}, timeout=60)


def urls(response) -> list[str]:
    return [r.url for r in [*response.history, response]] + \
        [r.headers.get("Location", "") for r in response.history]


def compose_field(page: str, name: str) -> str:
    """The value Roundcube's compose form starts with in field ``name`` (textarea or input)."""
    match = re.search(rf'<textarea[^>]*name="{name}"[^>]*>([^<]*)</textarea>', page) or \
        re.search(rf'<input[^>]*name="{name}"[^>]*value="([^"]*)"', page)
    assert match, f"no {name} field on the compose page"
    return html.unescape(match.group(1))


def test_write_email_from_a_contact_opens_compose_with_the_address(stack, world):
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/write/contact/{world['contact']}",
                                 f"/records/contacts/{world['contact']}", mailbox=world["account_id"]))
    assert page.status_code == 200, roundcube_logs(stack)
    assert "_action=compose" in page.url
    assert compose_field(page.text, "_to") == "Jane Doe <jane@acme.test>"
    # The recipient went server to server only: no URL of the whole hand-off names it.
    assert not any("jane" in url for url in urls(page))
    # The next compose window starts empty: the target is used once.
    again = alice.get(stack.roundcube_url, params={"_task": "mail", "_action": "compose"}, timeout=30)
    assert compose_field(again.text, "_to") == ""


def test_write_email_from_a_ticket_carries_its_number(stack, world):
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/write/ticket/{world['ticket']}",
                                 f"/records/tickets/{world['ticket']}", mailbox=world["account_id"]))
    assert compose_field(page.text, "_to") == "bob@customer.test"
    assert compose_field(page.text, "_subject") == f"[{world['number']}] Printer on fire"


def test_open_in_webmail_shows_that_message(stack, dovecot, world):
    subject = f"Order {secrets.token_hex(3)} question"
    store_message(stack, dovecot, world, "Another message")
    email_id, uid = store_message(stack, dovecot, world, subject)
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/webmail/{email_id}", f"/records/emails/{email_id}"))
    assert page.status_code == 200, roundcube_logs(stack)
    assert "_action=show" in page.url and f"_uid={uid}" in page.url
    assert subject in page.text and "Where is my order?" in page.text
    assert "Another message" not in page.text


def test_open_in_webmail_finds_a_message_in_another_folder_with_a_non_ascii_name(stack, dovecot, world):
    email_id, uid = store_message(stack, dovecot, world, "Filed away", folder="Ablage Größe")
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/webmail/{email_id}", f"/records/emails/{email_id}"))
    assert "_action=show" in page.url and f"_uid={uid}" in page.url
    assert "Filed away" in page.text


def test_a_message_gone_from_the_server_is_reported_and_mints_nothing(stack, dovecot, world):
    email_id, uid = store_message(stack, dovecot, world, "Soon deleted")
    conn = dovecot.connect(world["login"], world["password"])
    try:
        conn.select("INBOX")
        conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        conn.expunge()
    finally:
        conn.logout()
    with stack.app.app_context():
        before = db.session.scalar(select(func.count(AutologinToken.id)))
    alice = stack.browser("alice")
    answer = click(stack, alice, f"/bridge/webmail/{email_id}", f"/records/emails/{email_id}")
    assert answer.url.endswith(f"/records/emails/{email_id}")
    assert "This message is no longer on the mail server" in html.unescape(answer.text)
    with stack.app.app_context():
        assert db.session.scalar(select(func.count(AutologinToken.id))) == before


def test_a_message_whose_uid_changed_is_found_again_by_its_message_id(stack, dovecot, world):
    email_id, uid = store_message(stack, dovecot, world, "Copied around")
    # The server gave it a new UID (a copy back into the folder, the original expunged).
    conn = dovecot.connect(world["login"], world["password"])
    try:
        conn.select("INBOX")
        conn.uid("COPY", str(uid), "INBOX")
        conn.uid("STORE", str(uid), "+FLAGS", "(\\Deleted)")
        conn.expunge()
    finally:
        conn.logout()
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/webmail/{email_id}", f"/records/emails/{email_id}"))
    assert "_action=show" in page.url and f"_uid={uid}" not in page.url
    assert "Copied around" in page.text


@pytest.mark.parametrize("target", [
    {"action": "delete", "folder": "INBOX", "uid": 1},
    {"action": "compose", "to": "a@b.test\r\nBcc: c@d.test", "subject": ""},
    {"action": "show", "folder": "INBOX", "uid": "1"},
    "compose",
], ids=["an action not allowed", "a header in the recipient", "a UID as text", "not an object"])
def test_the_plugin_opens_the_inbox_for_a_target_it_does_not_allow(stack, world, monkeypatch, target):
    """The plugin's own allow-list, should the product (or something in its place) answer with another target."""
    from app.services.autologin import handoff as mailbox_handoff

    real = mailbox_handoff.Handoff.as_json
    monkeypatch.setattr(mailbox_handoff.Handoff, "as_json", lambda self: {**real(self), "target": target})
    alice = stack.browser("alice")
    page = hand_off(alice, click(stack, alice, f"/bridge/write/contact/{world['contact']}",
                                 f"/records/contacts/{world['contact']}", mailbox=world["account_id"]))
    assert page.status_code == 200
    assert "_action=" not in page.url and "_task=mail" in page.url
    assert re.search(r'header-title username">([^<]+)<', page.text).group(1) == world["login"]
    assert "opening the inbox" in roundcube_logs(stack)


def test_a_message_in_two_mailboxes_opens_in_the_one_the_user_is_granted(stack, dovecot, world):
    """Stored once from Sales, it reached Support too; bob may open only Support: it opens there, by its UID there."""
    login, password = dovecot.new_user("support")
    support = stack.add_mailbox("Support", login, password, imap_host=dovecot.host, imap_port=dovecot.port)
    stack.grant(support, stack.add_user("bob-support"))
    subject = f"Sent to both {secrets.token_hex(3)}"
    email_id, _ = store_message(stack, dovecot, world, subject)
    with stack.app.app_context():
        row = db.session.get(Email, email_id)
        raw, key = row.raw, row.message_key
    dovecot.append(login, password, "INBOX", b"Subject: filler\r\n\r\nmoves the UIDs on\r\n")
    uid = dovecot.append(login, password, "INBOX", raw)
    conn = dovecot.connect(login, password)
    try:
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)", conn.status("INBOX", "(UIDVALIDITY)")[1][0]).group(1))
    finally:
        conn.logout()
    with stack.app.app_context():
        db.session.add(EmailMailbox(email_id=email_id, account_id=support, message_key=key, folder="INBOX",
                                    uidvalidity=uidvalidity, uid=uid))
        db.session.commit()
    bob = stack.browser("bob-support")
    page = hand_off(bob, click(stack, bob, f"/bridge/webmail/{email_id}", f"/records/emails/{email_id}"))
    assert "_action=show" in page.url and f"_uid={uid}" in page.url
    assert subject in page.text
    inbox = bob.get(stack.roundcube_url, params={"_task": "mail"}, timeout=30)
    assert re.search(r'header-title username">([^<]+)<', inbox.text).group(1) == login
