""""Write e-mail" on records and "Open in webmail" on e-mails: buttons, access checks, the target on the token.

The app on SQLite and PostgreSQL; the hand-off up to the redeem answer. Roundcube opening the
target, and the mail server's answer about a message, are in tests/integration/test_webmail_targets.py.
"""

from __future__ import annotations

import json
import re

from sqlalchemy import func, select

from app.extensions import db
from app.models import AutologinToken
from app.scanner.bind import ticket_numbers_in
from app.services.autologin import write
from tests import factories

SECRET_HEADERS = {"X-Bridge-Secret": "test-bridge-secret"}


def _csrf(client, url="/"):
    return factories.csrf_from(client.get(url))


def _write(client, kind, record_id, **form):
    return client.post(f"/bridge/write/{kind}/{record_id}", data={"csrf_token": _csrf(client), **form})


def _redeem(client, response) -> dict:
    token = factories.handoff_token(response)
    key, confirmation = factories.bind_token(token)
    answer = client.post("/bridge/redeem", json={"token": token, "browser": key, "confirmation": confirmation},
                         headers=SECRET_HEADERS)
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _mailbox(app, name="Sales", login="sales@corp.test"):
    from app.crypto import encrypt_secret

    account = factories.mail_account(name=name, login=login)
    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "pw")
    db.session.commit()
    return account


def _tokens() -> int:
    return db.session.scalar(select(func.count(AutologinToken.id)))


def test_contact_write_opens_compose_to_its_address_and_the_target_stays_on_the_server(app, client, auth):
    alice = factories.user("alice")
    sales = _mailbox(app)
    factories.grant(alice, sales)
    jane = factories.contact()
    auth.login("alice")
    page = client.get(f"/records/contacts/{jane.id}").get_data(as_text=True)
    assert "Write e-mail" in page and f'action="/bridge/write/contact/{jane.id}"' in page
    response = _write(client, "contact", jane.id, to="Jane Doe <jane@acme.test>", mailbox=sales.id)
    # The page posts only the token: no recipient in it, nor in any URL.
    assert "jane@acme.test" not in response.get_data(as_text=True)
    row = db.session.scalar(select(AutologinToken))
    assert row.account_id == sales.id and row.target_kind == "compose"
    assert json.loads(row.target_json) == {"action": "compose", "to": "Jane Doe <jane@acme.test>", "subject": ""}
    answer = _redeem(client, response)
    assert answer["target"] == {"action": "compose", "to": "Jane Doe <jane@acme.test>", "subject": ""}
    assert answer["login"] == "sales@corp.test"


def test_mailbox_button_hand_off_names_no_target(app, client, auth):
    alice = factories.user("alice")
    sales = _mailbox(app)
    factories.grant(alice, sales)
    auth.login("alice")
    response = client.post(f"/bridge/open/{sales.id}", data={"csrf_token": _csrf(client)})
    assert _redeem(client, response)["target"] is None


def test_ticket_write_goes_to_the_requester_with_the_number_in_the_subject(app, client, auth):
    alice = factories.user("alice")
    support = _mailbox(app, "Support", "support@corp.test")
    factories.grant(alice, support)
    ticket = factories.ticket(subject="Printer on fire", requester="bob@customer.test", account=support)
    auth.login("alice")
    page = client.get(f"/records/tickets/{ticket.id}").get_data(as_text=True)
    assert "Write e-mail" in page
    target = _redeem(client, _write(client, "ticket", ticket.id, mailbox=support.id))["target"]
    assert target["to"] == "bob@customer.test"
    assert target["subject"] == f"[{ticket.number}] Printer on fire"
    assert ticket_numbers_in(target["subject"]) == [ticket.number]


def test_ticket_picker_starts_on_the_mailbox_the_ticket_came_from(app, client, auth):
    alice = factories.user("alice")
    sales, support = _mailbox(app), _mailbox(app, "Support", "support@corp.test")
    for box in (sales, support):
        factories.grant(alice, box)
    ticket = factories.ticket(requester="bob@customer.test", account=support)
    assert write.write_options(alice, "ticket", ticket).preselected == support.id
    auth.login("alice")
    page = client.get(f"/records/tickets/{ticket.id}").get_data(as_text=True)
    assert f'<option value="{support.id}" selected>Support</option>' in page
    assert f'<option value="{sales.id}">Sales</option>' in page


def test_ticket_the_user_may_not_see_is_404_and_mints_nothing(app, client, auth):
    alice = factories.user("alice")
    mine, secret = _mailbox(app), _mailbox(app, "Secret", "secret@corp.test")
    factories.grant(alice, mine)
    ticket = factories.ticket(requester="bob@customer.test", account=secret)
    auth.login("alice")
    assert _write(client, "ticket", ticket.id, mailbox=mine.id).status_code == 404
    assert _tokens() == 0


def test_organization_offers_its_own_and_its_contacts_addresses(app, client, auth):
    alice = factories.user("alice")
    sales, support = _mailbox(app), _mailbox(app, "Support", "support@corp.test")
    for box in (sales, support):
        factories.grant(alice, box)
    acme = factories.organization()
    factories.contact(org=acme)
    factories.contact(email="pat@acme.test", first="Pat", last="Lee", org=acme)
    options = write.write_options(alice, "organization", acme)
    assert [r.address for r in options.recipients] == ["info@acme.test", "jane@acme.test", "pat@acme.test"]
    auth.login("alice")
    page = client.get(f"/records/organizations/{acme.id}").get_data(as_text=True)
    # Two mailboxes and three addresses: both pickers.
    assert re.search(r'<select name="to">.*pat@acme.test', page, re.S)
    assert re.search(r'<select name="mailbox">.*Sales.*Support', page, re.S)
    target = _redeem(client, _write(client, "organization", acme.id, to="Pat Lee <pat@acme.test>",
                                    mailbox=support.id))["target"]
    assert target["to"] == "Pat Lee <pat@acme.test>"
    assert db.session.scalar(select(AutologinToken.account_id)) == support.id


def test_a_recipient_the_record_does_not_offer_is_refused(app, client, auth):
    alice = factories.user("alice")
    sales = _mailbox(app)
    factories.grant(alice, sales)
    jane = factories.contact()
    auth.login("alice")
    response = _write(client, "contact", jane.id, to="victim@elsewhere.test", mailbox=sales.id)
    assert response.status_code == 303 and _tokens() == 0
    assert "Pick one of the listed addresses" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_mailbox_not_granted_is_refused_without_a_token(app, client, auth):
    alice = factories.user("alice")
    mine, other = _mailbox(app), _mailbox(app, "Other", "other@corp.test")
    factories.grant(alice, mine)
    lead = factories.lead()
    auth.login("alice")
    response = _write(client, "lead", lead.id, mailbox=other.id)
    assert response.status_code == 403 and "not allowed to open this mailbox" in response.get_data(as_text=True)
    assert _tokens() == 0


def test_without_a_granted_mailbox_the_page_says_why(app, client, auth):
    factories.user("bob")
    jane = factories.contact()
    auth.login("bob")
    page = client.get(f"/records/contacts/{jane.id}").get_data(as_text=True)
    assert "/bridge/write/" not in page
    assert "No mailbox is granted to you" in page


def test_a_record_without_an_address_says_so(app, client, auth):
    alice = factories.user("alice")
    factories.grant(alice, _mailbox(app))
    nobody = factories.contact(email=None, first="No", last="Address")
    auth.login("alice")
    page = client.get(f"/records/contacts/{nobody.id}").get_data(as_text=True)
    assert "/bridge/write/" not in page and "This contact has no e-mail address" in page
    response = _write(client, "contact", nobody.id, mailbox=1)
    assert response.status_code == 303 and _tokens() == 0


def test_unknown_kinds_and_records_are_404(app, client, auth):
    factories.user("alice")
    auth.login("alice")
    for url in ("/bridge/write/user/1", "/bridge/write/contact/999", "/bridge/write/contact/99999999999"):
        assert client.post(url, data={"csrf_token": _csrf(client), "mailbox": "1"}).status_code == 404


def test_write_needs_the_csrf_token(app, client, auth):
    alice = factories.user("alice")
    factories.grant(alice, _mailbox(app))
    jane = factories.contact()
    auth.login("alice")
    assert factories.csrf_refused(client.post(f"/bridge/write/contact/{jane.id}", data={"mailbox": "1"}))
    assert _tokens() == 0


def test_email_page_offers_open_in_webmail_only_for_a_granted_mailbox(app, client, auth):
    alice = factories.user("alice")
    factories.user("admin", admin=True)
    sales = _mailbox(app)
    factories.grant(alice, sales)
    mail = factories.email(sales)
    auth.login("alice")
    page = client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
    assert f'action="/bridge/webmail/{mail.id}"' in page and "Open in webmail" in page
    auth.logout()
    # The administrator sees every e-mail, but opens in webmail only the mailboxes granted to them.
    auth.login("admin")
    page = client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
    assert "/bridge/webmail/" not in page and "not granted to you" in page
    response = client.post(f"/bridge/webmail/{mail.id}", data={"csrf_token": _csrf(client)})
    assert response.status_code == 303 and _tokens() == 0
    assert "not granted to you" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_open_in_webmail_of_an_email_the_user_may_not_see_is_404(app, client, auth):
    factories.user("alice")
    mail = factories.email(_mailbox(app))
    auth.login("alice")
    assert client.post(f"/bridge/webmail/{mail.id}", data={"csrf_token": _csrf(client)}).status_code == 404
    assert _tokens() == 0


def _also_in(mail, account, uid=77):
    """Link a stored e-mail to a second mailbox it reached, as a scan of that mailbox does."""
    from app.models import EmailMailbox

    db.session.add(EmailMailbox(email_id=mail.id, account_id=account.id, message_key=mail.message_key,
                                folder="Archive", uidvalidity=5, uid=uid))
    db.session.commit()


def test_open_in_webmail_offers_only_granted_mailboxes_among_those_the_email_reached(app, client, auth):
    from app.services.autologin import webmail

    alice = factories.user("alice")
    sales, support, other = (_mailbox(app), _mailbox(app, "Support", "support@corp.test"),
                             _mailbox(app, "Other", "other@corp.test"))
    mail = factories.email(sales)
    _also_in(mail, support)
    factories.grant(alice, support)
    factories.grant(alice, other)  # granted, but the e-mail never reached it
    places = webmail.places_for(alice, mail)
    assert [(p.account_id, p.folder, p.uid) for p in places] == [(support.id, "Archive", 77)]
    auth.login("alice")
    page = client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
    assert f'<input type="hidden" name="mailbox" value="{support.id}">' in page
    # A mailbox the e-mail did not reach, or one not granted, is refused before any server is asked.
    for account in (other, sales):
        response = client.post(f"/bridge/webmail/{mail.id}", data={"csrf_token": _csrf(client), "mailbox": account.id})
        assert response.status_code == 303 and _tokens() == 0
    factories.grant(alice, sales)
    page = client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
    assert (f'<select name="mailbox"><option value="{sales.id}">Sales</option>'
            f'<option value="{support.id}">Support</option>') in page


def test_open_in_webmail_asks_the_mail_server_at_most_the_mint_limit_times_a_window(app, client, auth):
    # Each click logs in to the mail server to find the message; a message gone from the server mints
    # no token, so the token limit alone let one user make the web process log in without end.
    app.config["AUTOLOGIN_MINT_LIMIT"] = 2
    alice = factories.user("alice")
    sales = _mailbox(app)
    sales.server.imap_port = 1  # nothing listens: each lookup fails at once, as for a gone message
    db.session.commit()
    factories.grant(alice, sales)
    mail = factories.email(sales)
    auth.login("alice")
    token = _csrf(client)
    answers = [client.post(f"/bridge/webmail/{mail.id}", data={"csrf_token": token}) for _ in range(3)]
    assert [a.status_code for a in answers] == [303, 303, 429]
    assert "very often" in answers[2].get_data(as_text=True) and _tokens() == 0
