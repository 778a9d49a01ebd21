"""Tickets follow the grants of the mailbox they were made from (app/services/ticket_access.py).

alice is granted "Granted", not "Secret". A ticket made from "Secret" must not
show its subject, requester or organization to her anywhere: not in the list,
not by search or status filter, not on its page, not among an e-mail's related
records; and she cannot change its status. The administrator's answers prove
each URL is right.
"""

from __future__ import annotations

import pytest

from app.extensions import db
from app.models import EmailMailbox, Ticket
from tests import factories
from tests.security import world

SECRET_MARKERS = (world.SECRET_TICKET_SUBJECT.encode(), world.SECRET_REQUESTER.encode())


@pytest.fixture
def w(app):
    return world.build()


def _lists(w) -> list[str]:
    number = w.secret_ticket.number
    return ["/records/tickets", "/records/tickets?status=open", f"/records/tickets?q={number}",
            f"/records/tickets?q={number.lower()}", "/records/tickets?q=Secret-ticket",
            "/records/tickets?q=whistleblower", f"/records/emails/{w.granted_email.id}"]


def test_a_ticket_of_a_mailbox_not_granted_is_nowhere_to_be_seen(client, auth, w):
    auth.login("alice")
    for url in _lists(w):
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert not any(m in answer.data for m in SECRET_MARKERS), f"{url} shows the secret ticket to alice"
        assert f"/records/tickets/{w.secret_ticket.id}".encode() not in answer.data, url
    answer = client.get(f"/records/tickets/{w.secret_ticket.id}")
    assert answer.status_code == 404 and not any(m in answer.data for m in SECRET_MARKERS)
    auth.logout()
    auth.login("admin")
    for url in _lists(w)[:3] + _lists(w)[4:]:
        assert world.SECRET_TICKET_SUBJECT.encode() in client.get(url).data, f"{url}: the walk proves nothing"
    assert client.get(f"/records/tickets/{w.secret_ticket.id}").status_code == 200


def test_a_user_cannot_change_the_status_of_a_ticket_not_granted(client, auth, w):
    auth.login("alice")
    token = factories.csrf_from(client.get(f"/records/tickets/{w.ticket.id}"))
    answer = client.post(f"/records/tickets/{w.secret_ticket.id}/status", data={"status": "closed",
                                                                                "csrf_token": token})
    assert answer.status_code == 404
    db.session.expire_all()
    assert db.session.get(Ticket, w.secret_ticket.id).status == "open"
    # Her own mailbox's ticket she can change.
    answer = client.post(f"/records/tickets/{w.ticket.id}/status", data={"status": "waiting", "csrf_token": token})
    assert answer.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ticket, w.ticket.id).status == "waiting"


def test_the_granted_mailbox_ticket_is_shown(client, auth, w):
    auth.login("alice")
    assert w.ticket.subject.encode() in client.get("/records/tickets").data
    assert client.get(f"/records/tickets/{w.ticket.id}").status_code == 200
    assert w.ticket.subject.encode() in client.get(f"/records/emails/{w.granted_email.id}").data


def test_the_assignee_sees_a_ticket_of_a_mailbox_not_granted(client, auth, w):
    w.secret_ticket.assignee_id = w.alice.id
    db.session.commit()
    auth.login("alice")
    assert world.SECRET_TICKET_SUBJECT.encode() in client.get("/records/tickets").data
    page = client.get(f"/records/tickets/{w.secret_ticket.id}")
    assert page.status_code == 200
    answer = client.post(f"/records/tickets/{w.secret_ticket.id}/status",
                         data={"status": "answered", "csrf_token": factories.csrf_from(page)})
    assert answer.status_code == 302
    # Its mail still follows the mailbox grants: the secret e-mail is not listed on the ticket's page.
    assert world.SECRET_SUBJECT.encode() not in page.data


def test_a_ticket_not_made_from_a_mailbox_is_for_administrators_and_its_assignee(client, auth, w):
    bob = factories.user("bob")
    by_hand = factories.ticket(subject="Made-by-hand-77aa", assignee=bob)
    auth.login("alice")
    assert b"Made-by-hand-77aa" not in client.get("/records/tickets").data
    assert client.get(f"/records/tickets/{by_hand.id}").status_code == 404
    auth.logout()
    auth.login("bob")
    assert b"Made-by-hand-77aa" in client.get("/records/tickets").data
    assert client.get(f"/records/tickets/{by_hand.id}").status_code == 200


def test_a_follow_up_does_not_name_a_parent_the_user_may_not_see(client, auth, w):
    child = factories.ticket(subject="Follow-up-3b1e", account=w.granted, parent=w.secret_ticket)
    auth.login("alice")
    page = client.get(f"/records/tickets/{child.id}")
    assert page.status_code == 200 and b"Follow-up-3b1e" in page.data
    assert not any(m in page.data for m in SECRET_MARKERS)
    assert f"/records/tickets/{w.secret_ticket.id}".encode() not in page.data
    auth.logout()
    auth.login("admin")
    assert world.SECRET_TICKET_SUBJECT.encode() in client.get(f"/records/tickets/{child.id}").data


def test_mail_citing_a_ticket_number_does_not_open_the_ticket_to_other_mailboxes(client, auth, w):
    # Anyone can write "[TT-…]" in a subject: a later message bound to the secret ticket by its number,
    # even one that reached both mailboxes, does not show that ticket to the users of the granted one.
    opener = factories.email(w.secret, subject="Opened it", related=[w.secret_ticket])
    citing = factories.email(w.secret, subject=f"Re: [{w.secret_ticket.number}]", related=[w.secret_ticket],
                             message_id="citing@attacker.test")
    db.session.add(EmailMailbox(email_id=citing.id, account_id=w.granted.id, message_key="citing@attacker.test",
                                folder="INBOX", uidvalidity=1, uid=9001))
    db.session.commit()
    auth.login("alice")
    assert client.get(f"/records/tickets/{w.secret_ticket.id}").status_code == 404
    assert not any(m in client.get("/records/tickets").data for m in SECRET_MARKERS)
    # The message that opened it reaching her mailbox too is what shows it to her.
    db.session.add(EmailMailbox(email_id=opener.id, account_id=w.granted.id, message_key=opener.message_key,
                                folder="INBOX", uidvalidity=1, uid=9002))
    db.session.commit()
    assert client.get(f"/records/tickets/{w.secret_ticket.id}").status_code == 200
