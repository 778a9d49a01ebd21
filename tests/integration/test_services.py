"""The real-service helpers work: a user added on the fly logs in and sees appended mail."""

from __future__ import annotations

import imaplib
import smtplib
import time
from email.message import EmailMessage

import pytest
import redis

from tests.services import DEMO_USERS

pytestmark = pytest.mark.integration


def _message(subject: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Customer <jane@acme.test>"
    msg["To"] = "support@corp.test"
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@acme.test>"
    msg.set_content("Hello, this is a test.\n")
    return msg.as_bytes()


def test_added_user_logs_in_and_sees_appended_message(dovecot):
    login, password = dovecot.new_user("svc")
    uid = dovecot.append(login, password, "INBOX", _message("first test"))
    assert uid == 1

    conn = imaplib.IMAP4(dovecot.host, dovecot.port)
    try:
        assert conn.login(login, password)[0] == "OK"
        typ, data = conn.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) == 1
        typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert b"Subject: first test" in data[0][1]
    finally:
        conn.logout()
    assert (dovecot.maildir(login) / "cur").is_dir() or (dovecot.maildir(login) / "new").is_dir()


def test_append_creates_missing_folder(dovecot):
    login, password = dovecot.new_user("svc")
    uids = dovecot.append_many(login, password, "Sent", [_message("a"), _message("b")])
    assert uids == [1, 2]
    assert "Sent" in dovecot.folders(login, password)


def test_changed_password_takes_effect_and_wrong_one_is_refused(dovecot):
    login, password = dovecot.new_user("svc")
    dovecot.connect(login, password).logout()
    # Same length as the old password, written within the same second: the case that
    # Dovecot's change detection (mtime + size) would miss without the helper's care.
    new_password = "x" * len(password)
    dovecot.add_user(login, new_password)
    dovecot.connect(login, new_password).logout()
    with pytest.raises(imaplib.IMAP4.error):
        dovecot.connect(login, password)


def test_demo_users_exist(dovecot):
    for login, password in DEMO_USERS.items():
        conn = dovecot.connect(login, password)
        assert conn.state == "AUTH", (login, conn.state)  # logged in
        assert conn.select("INBOX")[0] == "OK", login
        assert conn.logout()[0] == "BYE"


def test_redis_url_answers(redis_url):
    conn = redis.Redis.from_url(redis_url)
    assert conn.ping() is True
    conn.close()


def test_smtp_sink_keeps_authenticated_message(dovecot, smtp_sink):
    login, password = dovecot.new_user("smtp")
    since = time.time()
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        smtp.login(login, password)
        msg = EmailMessage()
        msg["From"] = login
        msg["To"] = "x@acme.test"
        msg["Subject"] = f"sink {since}"
        msg.set_content("body")
        smtp.send_message(msg)
    got = smtp_sink.wait_for(lambda m: m.message["Subject"] == f"sink {since}", since=since)
    assert got.auth_user == login
    assert got.rcpt_tos == ["x@acme.test"]


def test_smtp_sink_refuses_wrong_password(dovecot, smtp_sink):
    login, _ = dovecot.new_user("smtp")
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.login(login, "wrong-password")
