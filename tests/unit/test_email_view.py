"""An e-mail's page: sandboxed body, remote content, cid images, downloads, and who may see it."""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote

import pytest

from app.records.downloads import content_disposition, safe_filename
from app.records.mail_body import rewrite_images
from tests import factories

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGA"
                       "WjR9awAAAABJRU5ErkJggg==")
# What the scanner's sanitizer leaves of a hostile message: no script, remote image address parked aside.
STORED_HTML = ('<p>Hello <b>there</b></p><img alt="logo" src="cid:logo@acme">'
               '<img alt="pixel" data-remote-src="https://tracker.example/p.gif?id=1&amp;u=2">'
               '<a href="https://acme.example/" rel="noopener noreferrer">site</a>')


@pytest.fixture
def mailbox(app):
    return factories.mail_account()


@pytest.fixture
def hostile(mailbox):
    return factories.email(mailbox, subject="Quarterly report", body_html=STORED_HTML, has_remote_content=True,
                           attachments=[
                               {"filename": "logo.png", "content_type": "image/png", "data": PNG,
                                "content_id": "logo@acme", "is_inline": True},
                               {"filename": "../../etc/\u202egnp.exe\x07", "content_type": "text/html",
                                "data": b"<script>alert(1)</script>"},
                           ])


def _urls(email):
    base = f"/records/emails/{email.id}"
    return {"page": base, "body": f"{base}/body", "remote": f"{base}/body?remote=1",
            "attachment": f"{base}/attachments/{email.attachments[0].id}", "eml": f"{base}/original.eml"}


def test_page_shows_headers_attachments_and_a_sandboxed_frame(client, auth, admin, hostile):
    contact = factories.contact()
    factories.email(hostile.account, subject="other")  # not related, not shown
    from app.extensions import db
    from app.models import EmailLink
    db.session.add(EmailLink(email_id=hostile.id, record_type="contact", record_id=contact.id))
    db.session.commit()
    auth.login("admin")
    page = client.get(f"/records/emails/{hostile.id}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Quarterly report" in html and "jane@acme.test" in html and "support@corp.test" in html
    assert "INBOX" in html and "msg-" in html and "Support" in html
    iframe = re.search(r"<iframe[^>]*>", html).group(0)
    assert " sandbox=" in iframe and "allow-scripts" not in iframe and "allow-same-origin" not in iframe
    assert f'src="/records/emails/{hostile.id}/body"' in iframe
    assert "Show remote content" in html
    assert f"/records/contacts/{contact.id}" in html and "Jane Doe" in html
    assert "logo.png" in html and "image/png" in html
    assert f"/records/emails/{hostile.id}/attachments/{hostile.attachments[1].id}" in html
    assert "tracker.example" not in html  # the body itself is never inlined in the page


def test_body_is_served_with_a_strict_policy_and_remote_images_blocked(client, auth, admin, hostile):
    auth.login("admin")
    response = client.get(f"/records/emails/{hostile.id}/body")
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "img-src 'self' data:" in csp and "style-src 'unsafe-inline'" in csp
    assert "script-src" not in csp and "img-src *" not in csp
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = response.get_data(as_text=True)
    assert "<b>there</b>" in body
    pixel = re.search(r'<img alt="pixel"[^>]*>', body).group(0)
    assert " src=" not in pixel and "data-remote-src" in pixel


def test_remote_images_are_shown_on_request(client, auth, admin, hostile):
    auth.login("admin")
    page = client.get(f"/records/emails/{hostile.id}?remote=1").get_data(as_text=True)
    assert f'src="/records/emails/{hostile.id}/body?remote=1"' in page
    assert "Block remote content" in page
    response = client.get(f"/records/emails/{hostile.id}/body?remote=1")
    assert "img-src * data:" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    pixel = re.search(r'<img alt="pixel"[^>]*>', response.get_data(as_text=True)).group(0)
    assert 'src="https://tracker.example/p.gif?id=1&amp;u=2"' in pixel


def test_cid_image_is_mapped_to_its_attachment(client, auth, admin, hostile):
    auth.login("admin")
    body = client.get(f"/records/emails/{hostile.id}/body").get_data(as_text=True)
    logo = re.search(r'<img alt="logo"[^>]*>', body).group(0)
    src = re.search(r'src="([^"]+)"', logo).group(1)
    assert src.startswith("data:image/png;base64,")
    assert base64.b64decode(src.split(",", 1)[1]) == PNG


def test_rewrite_images_handles_placeholders_and_refuses_odd_schemes():
    html = ('<img data-cid="part1.x@y"><img src="cid:MISSING"><img data-remote-src="javascript:alert(1)">'
            '<img title="a>b" data-remote-src="http://ok.example/i.png">')
    out = rewrite_images(html, {"part1.x@y": "data:image/gif;base64,R0lG"}, allow_remote=True)
    assert '<img src="data:image/gif;base64,R0lG">' in out
    assert "<img>" in out  # an unknown cid loses its src: no request at all
    assert "javascript" not in out.split('data-remote-src="javascript')[0] and ' src="javascript' not in out
    assert '<img title="a>b" src="http://ok.example/i.png">' in out
    blocked = rewrite_images(html, {}, allow_remote=False)
    assert "http://ok.example/i.png" not in blocked.replace('data-remote-src="http://ok.example/i.png"', "")


def test_plain_text_mail_is_shown_in_pre(client, auth, admin, mailbox):
    mail = factories.email(mailbox, body_html="", body_text="Line one\n<script>alert(1)</script>")
    auth.login("admin")
    html = client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
    assert "<iframe" not in html
    assert "<pre" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html


def test_attachment_with_path_traversal_name_downloads_safely(client, auth, admin, hostile):
    auth.login("admin")
    evil = hostile.attachments[1]
    response = client.get(f"/records/emails/{hostile.id}/attachments/{evil.id}")
    assert response.status_code == 200
    assert response.data == b"<script>alert(1)</script>"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert ".." not in disposition and "/" not in disposition.split("filename*=")[0]
    assert "\u202e" not in unquote(disposition) and "\x07" not in disposition
    assert 'filename="gnp.exe"' in disposition
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_safe_filename_and_rfc5987():
    assert safe_filename("..\\..\\windows\\system32\\evil.dll") == "evil.dll"
    assert safe_filename("../../") == "attachment"
    assert safe_filename('a"b;c\r\n.txt') == "abc.txt"
    value = content_disposition("Résumé – été.pdf")
    assert value.startswith('attachment; filename="Resume  ete.pdf"; ')
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20%E2%80%93%20%C3%A9t%C3%A9.pdf" in value
    assert content_disposition("plain.txt") == 'attachment; filename="plain.txt"'


def test_original_eml_is_the_exact_raw_bytes_even_when_not_utf8(client, auth, admin, mailbox):
    raw = (b"From: =?bogus?Q?x?= <a@b.test>\r\nSubject: caf\xe9 \xff\xfe\r\nMessage-ID: <x@y>\r\n\r\n"
           b"body with \x80\x81 invalid utf-8 and a lone \xc3\r\n")
    mail = factories.email(mailbox, raw=raw)
    auth.login("admin")
    response = client.get(f"/records/emails/{mail.id}/original.eml")
    assert response.status_code == 200
    assert response.data == raw
    assert response.headers["Content-Type"].startswith("message/rfc822")
    assert response.headers["Content-Disposition"] == f'attachment; filename="message-{mail.id}.eml"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_user_without_the_grant_gets_404_everywhere(client, auth, user, hostile):
    auth.login("alice")
    for name, url in _urls(hostile).items():
        assert client.get(url).status_code == 404, name
    listing = client.get("/records/emails").get_data(as_text=True)
    assert "Quarterly report" not in listing


def test_related_mail_lists_hide_mail_of_other_mailboxes(client, auth, user, hostile):
    contact = factories.contact()
    granted = factories.mail_account(name="Sales", login="sales@corp.test")
    factories.grant(user, granted)
    factories.email(granted, subject="Visible to alice", related=[contact])
    factories.email(hostile.account, subject="Hidden from alice", related=[contact])
    auth.login("alice")
    page = client.get(f"/records/contacts/{contact.id}").get_data(as_text=True)
    assert "Visible to alice" in page and "Hidden from alice" not in page
    listing = client.get("/records/emails").get_data(as_text=True)
    assert "Visible to alice" in listing and "Quarterly report" not in listing
    # Even asking for the other mailbox by id in the filter shows nothing of it.
    filtered = client.get(f"/records/emails?mailbox={hostile.account_id}").get_data(as_text=True)
    assert "Quarterly report" not in filtered and "Hidden from alice" not in filtered


def test_user_with_the_grant_sees_everything_of_that_mailbox(client, auth, user, hostile):
    factories.grant(user, hostile.account)
    auth.login("alice")
    for name, url in _urls(hostile).items():
        assert client.get(url).status_code == 200, name
    assert "Quarterly report" in client.get("/records/emails").get_data(as_text=True)


def test_admin_sees_every_mailbox(client, auth, admin, hostile):
    auth.login("admin")
    for name, url in _urls(hostile).items():
        assert client.get(url).status_code == 200, name
    assert "Quarterly report" in client.get("/records/emails").get_data(as_text=True)


def test_attachment_of_another_email_is_404(client, auth, admin, hostile, mailbox):
    other = factories.email(mailbox, subject="other")
    auth.login("admin")
    url = f"/records/emails/{other.id}/attachments/{hostile.attachments[0].id}"
    assert client.get(url).status_code == 404


def test_hostile_html_through_the_real_sanitizer_is_served_inert(client, auth, admin, mailbox):
    from app.scanner.sanitize import sanitize_html

    hostile_html = ('<div onclick="steal()" style="position:fixed;background:url(https://t.example/bg)">Hi'
                    '<script>alert(1)</script><a href="javascript:alert(2)">click</a>'
                    '<img src="https://t.example/pixel.gif" onerror="alert(3)">'
                    '<img src="cid:Chart@Mail"><iframe src="https://evil.example/"></iframe></div>')
    safe, had_remote = sanitize_html(hostile_html)
    mail = factories.email(mailbox, body_html=safe, has_remote_content=had_remote, attachments=[
        {"filename": "chart.png", "content_type": "image/png", "data": PNG, "content_id": "chart@mail",
         "is_inline": True}])
    auth.login("admin")
    body = client.get(f"/records/emails/{mail.id}/body").get_data(as_text=True).lower()
    for bad in ("<script", "onclick", "onerror", "javascript:", "<iframe", "position:fixed", "url("):
        assert bad not in body, bad
    assert not re.search(r'\ssrc="https://t\.example', body)
    assert 'data-remote-src="https://t.example/pixel.gif"' in body
    assert "data:image/png;base64," in body
    shown = client.get(f"/records/emails/{mail.id}/body?remote=1").get_data(as_text=True)
    assert re.search(r'\ssrc="https://t\.example/pixel\.gif"', shown) and "<script" not in shown
    assert "Show remote content" in client.get(f"/records/emails/{mail.id}").get_data(as_text=True)
