"""One message stored once for two mailboxes: every user granted either sees it, its ticket, and the run
log says "also in" (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

from app.extensions import db
from app.models import EmailMailbox, ScanRun, User
from tests import factories


def _shared_email():
    """An e-mail stored from Support that also reached Sales (as a scan of Sales links it), with its
    ticket; and a user granted Sales only."""
    support = factories.mail_account("Support", "support@corp.test")
    sales = factories.mail_account("Sales", "sales@corp.test")
    ticket = factories.ticket(subject="Printer broken", account=support)
    email = factories.email(support, subject="Printer broken", related=[ticket], message_id="both@acme.test",
                            attachments=[{"filename": "photo.txt", "content_type": "text/plain",
                                          "data": b"a photo"}])
    db.session.add(EmailMailbox(email_id=email.id, account_id=sales.id, message_key="both@acme.test",
                                folder="Orders", uidvalidity=5, uid=77))
    db.session.commit()
    bob = factories.user("bob")
    factories.grant(bob, sales)
    return email, ticket, support, sales


def test_a_user_of_either_mailbox_sees_the_mail_and_its_downloads(app, client, auth):
    email, ticket, support, sales = _shared_email()
    auth.login("bob")
    listing = client.get("/records/emails").get_data(as_text=True)
    assert "Printer broken" in listing
    # Its row names the mailbox he may read, not the one it was stored from first.
    assert "<td>Sales</td>" in listing and "Support" not in listing.split("<main", 1)[1]
    assert "Printer broken" in client.get(f"/records/emails?mailbox={sales.id}").get_data(as_text=True)
    # Support is not his: filtering by it shows nothing.
    assert "Printer broken" not in client.get(f"/records/emails?mailbox={support.id}").get_data(as_text=True)
    assert "Printer broken" in client.get("/records/emails?q=printer").get_data(as_text=True)
    page = client.get(f"/records/emails/{email.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    # The mailboxes it reached that he may read, where: Sales / Orders; Support is not named to him.
    assert "Sales" in text and "Orders" in text and "Support" not in text.split("<main", 1)[1]
    attachment = email.attachments[0]
    assert client.get(f"/records/emails/{email.id}/attachments/{attachment.id}").data == b"a photo"
    assert client.get(f"/records/emails/{email.id}/original.eml").status_code == 200
    # The ticket made from it follows: visible in the list, on its page and on the e-mail's page.
    assert ticket.number in text
    assert client.get(f"/records/tickets/{ticket.id}").status_code == 200
    assert ticket.number in client.get("/records/tickets").get_data(as_text=True)


def test_a_user_of_neither_mailbox_sees_nothing(app, client, auth):
    email, ticket, _support, _sales = _shared_email()
    factories.user("eve")
    auth.login("eve")
    assert "Printer broken" not in client.get("/records/emails").get_data(as_text=True)
    for path in (f"/records/emails/{email.id}", f"/records/emails/{email.id}/original.eml",
                 f"/records/emails/{email.id}/attachments/{email.attachments[0].id}",
                 f"/records/tickets/{ticket.id}"):
        assert client.get(path).status_code == 404, path


def test_the_admin_sees_every_mailbox_it_reached(app, client, auth):
    email, _ticket, _support, _sales = _shared_email()
    factories.user("root", admin=True)
    auth.login("root")
    text = client.get(f"/records/emails/{email.id}").get_data(as_text=True)
    assert "Mailboxes" in text and "Support" in text and "Sales" in text and "Orders" in text


def test_the_run_log_says_also_in_which_mailbox(app, client, auth):
    support = factories.mail_account("Support", "support@corp.test")
    sales = factories.mail_account("Sales", "sales@corp.test")
    db.session.add(ScanRun(account_id=sales.id, status="done", downloaded=5, created=2, also_in=3,
                           also_in_details=json.dumps({str(support.id): 3})))
    db.session.commit()
    factories.user("root", admin=True)
    auth.login("root")
    page = client.get("/admin/history").get_data(as_text=True)
    assert "+3 also in Support" in page


def test_lists_name_only_a_mailbox_the_user_may_read(app, client, auth):
    # Stored first from Support, seen by Bob through Sales: every list names Sales, never Support.
    email, ticket, _support, _sales = _shared_email()
    bob = db.session.scalar(db.select(User).where(User.username == "bob"))
    ticket.assignee_id = bob.id
    db.session.commit()
    auth.login("bob")
    for path in ("/records/emails", f"/records/tickets/{ticket.id}", "/"):
        main = client.get(path).get_data(as_text=True).split("<main", 1)[1]
        assert "Printer broken" in main, path
        assert "Sales" in main and "Support" not in main, path


def test_deleting_the_mailbox_a_ticket_came_from_hands_it_to_the_other_mailbox_its_message_reached(
        app, client, auth):
    from app.services.scanners import delete_scanner

    email, ticket, support, sales = _shared_email()
    only_support = factories.ticket(subject="Support only", account=support)
    factories.email(support, subject="Support only", related=[only_support])
    delete_scanner(support.id)
    db.session.expire_all()
    assert db.session.get(type(ticket), ticket.id).account_id == sales.id
    assert db.session.get(type(ticket), only_support.id).account_id is None
    auth.login("bob")
    assert client.get(f"/records/tickets/{ticket.id}").status_code == 200
    assert client.get(f"/records/tickets/{only_support.id}").status_code == 404
