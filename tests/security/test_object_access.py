"""Object-level access: mail of a mailbox a user was not granted stays invisible, everywhere it could show.

The rule lives in app/services/email_access.py (administrators see all; a user
sees the mail of the mailboxes granted to them). Each URL below is asked for by
alice (granted "Granted", not "Secret") and by the administrator: the admin's
answer proves the URL and the marker are right, so a 404 for alice means the
rule, not a typo.
"""

from __future__ import annotations

import pytest

from tests import factories
from tests.security import world

# Pages that must not reveal the secret e-mail at all (single-object URLs: 404, as if it did not exist).
SECRET_OBJECTS = [
    ("e-mail page", "/records/emails/{secret}", world.SECRET_SUBJECT.encode()),
    ("body frame", "/records/emails/{secret}/body", b"secret-html-body-5d0e"),
    ("attachment", "/records/emails/{secret}/attachments/{secret_att}", world.SECRET_ATTACHMENT),
    ("original .eml", "/records/emails/{secret}/original.eml", world.SECRET_SUBJECT.encode()),
    # The secret attachment reached through an e-mail alice may read.
    ("attachment via a granted e-mail", "/records/emails/{granted}/attachments/{secret_att}", None),
]

# Lists that show the granted e-mail to alice and must leave the secret one out.
LISTS = [
    ("e-mail list", "/records/emails"),
    ("e-mail list filtered to the secret mailbox", "/records/emails?mailbox={secret_box}"),
    ("e-mail list searched for the secret subject", "/records/emails?q=SECRET-merger"),
    ("contact's related mail", "/records/contacts/{contact}"),
    ("organization's related mail", "/records/organizations/{org}"),
    ("lead's related mail", "/records/leads/{lead}"),
    ("ticket's mail", "/records/tickets/{ticket}"),
    ("user's related mail", "/records/users/{alice}"),
    ("related mail, page 2", "/records/contacts/{contact}?page=2"),
]


@pytest.fixture
def w(app):
    return world.build()


def _fill(url: str, w) -> str:
    return url.format(secret=w.secret_email.id, granted=w.granted_email.id, secret_att=w.secret_attachment_id,
                      secret_box=w.secret.id, contact=w.contact.id, org=w.organization.id, lead=w.lead.id,
                      ticket=w.ticket.id, alice=w.alice.id)


@pytest.mark.parametrize(("what", "url", "marker"), SECRET_OBJECTS, ids=[s[0] for s in SECRET_OBJECTS])
def test_a_user_cannot_open_mail_of_a_mailbox_not_granted(client, auth, w, what, url, marker):
    url = _fill(url, w)
    auth.login("alice")
    answer = client.get(url)
    assert answer.status_code == 404, f"{what}: {answer.status_code}"
    assert world.SECRET_SUBJECT.encode() not in answer.data and world.SECRET_ATTACHMENT not in answer.data
    auth.logout()
    auth.login("admin")
    answer = client.get(url)
    if marker is None:
        assert answer.status_code == 404  # the attachment does not belong to that e-mail, for anybody
    else:
        assert answer.status_code == 200 and marker in answer.data


def test_the_granted_mailbox_opens_normally(client, auth, w):
    auth.login("alice")
    for url in (f"/records/emails/{w.granted_email.id}", f"/records/emails/{w.granted_email.id}/body",
                f"/records/emails/{w.granted_email.id}/attachments/{w.granted_attachment_id}",
                f"/records/emails/{w.granted_email.id}/original.eml"):
        assert client.get(url).status_code == 200, url


@pytest.mark.parametrize(("what", "url"), LISTS, ids=[s[0] for s in LISTS])
def test_lists_leave_out_mail_of_a_mailbox_not_granted(client, auth, w, what, url):
    url = _fill(url, w)
    auth.login("alice")
    answer = client.get(url)
    assert answer.status_code == 200
    assert world.SECRET_SUBJECT.encode() not in answer.data, f"{what} shows the secret e-mail to alice"
    auth.logout()
    auth.login("admin")
    seen_by_admin = client.get(url).data
    if "page=2" not in url:
        assert world.SECRET_SUBJECT.encode() in seen_by_admin, f"{what}: the walk proves nothing"


def test_the_unfiltered_lists_still_show_the_granted_mail(client, auth, w):
    auth.login("alice")
    for url in ("/records/emails", f"/records/contacts/{w.contact.id}", f"/records/tickets/{w.ticket.id}"):
        assert world.GRANTED_SUBJECT.encode() in client.get(url).data, url


def test_mailbox_names_and_hand_off_of_a_mailbox_not_granted(client, auth, w):
    auth.login("alice")
    for url in ("/", "/mailbox", "/records/emails"):
        page = client.get(url).get_data(as_text=True)
        assert "Granted" in page
        assert ">Secret<" not in page and "Secret</option>" not in page, url
    polled = client.get("/bridge/unread").get_json()
    assert [m["id"] for m in polled["mailboxes"]] in ([], [w.granted.id])
    assert w.secret.id not in [m["id"] for m in polled["mailboxes"]]
    page = client.get("/")
    answer = client.post(f"/bridge/open/{w.secret.id}", data={"csrf_token": factories.csrf_from(page)})
    assert answer.status_code == 403 and "Location" not in answer.headers
