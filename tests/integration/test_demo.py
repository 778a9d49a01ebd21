"""The demo seed: idempotent records, and sample mail appended once into a real Dovecot."""

from __future__ import annotations

import email

import pytest
from sqlalchemy import func, select

from app.demo import mailbox, report, samples
from app.extensions import db
from app.models import AutologinGrant, Contact, MailAccount, MailServer, User
from tests.services import DOVECOT_PORT

pytestmark = pytest.mark.integration


def test_seed_is_idempotent(app, runner):
    first = runner.invoke(args=["demo", "seed", "--no-mail"])
    assert first.exit_code == 0, first.output
    assert "user admin" in first.output
    second = runner.invoke(args=["demo", "seed", "--no-mail"])
    assert second.exit_code == 0, second.output
    assert "nothing new created" in second.output

    assert db.session.scalar(select(func.count()).select_from(User)) == 2
    assert db.session.scalar(select(func.count()).select_from(MailServer)) == 1
    admin = db.session.scalar(select(User).where(User.username == "admin"))
    assert admin.is_admin and admin.check_password("admin-demo-pw")
    account = db.session.scalar(select(MailAccount))
    assert account.login == "demo@corp.test"
    assert [(f.name, f.direction) for f in account.folders] == [("INBOX", "incoming"), ("Sent", "outgoing")]
    assert account.server.imap_port == DOVECOT_PORT and account.server.imap_security == "none"
    assert account.password_enc and "demopw" not in account.password_enc
    alice = db.session.scalar(select(User).where(User.username == "alice"))
    assert db.session.scalar(select(AutologinGrant).where(AutologinGrant.user_id == alice.id,
                                                          AutologinGrant.account_id == account.id))
    assert db.session.scalar(select(Contact).where(Contact.email == "jane.doe@acme.test")).organization.name \
        == "Acme Industries"


def test_sample_mail_appended_once(dovecot):
    login, password = dovecot.new_user("demo")
    messages = samples.sample_messages("TT-000001")
    first = report.SeedReport()
    mailbox.append_samples(messages, first, host=dovecot.host, port=dovecot.port, login=login, password=password)
    assert first.appended == len(messages) >= 12
    again = report.SeedReport()
    mailbox.append_samples(messages, again, host=dovecot.host, port=dovecot.port, login=login, password=password)
    assert again.appended == 0 and again.already_there == len(messages)

    conn = dovecot.connect(login, password)
    try:
        typ, data = conn.select("INBOX", readonly=True)
        inbox = int(data[0])
        assert inbox == sum(1 for s in messages if s.folder == "INBOX")
        typ, data = conn.uid("SEARCH", "SUBJECT", "\"Quote request\"")
        uid = data[0].split()[0]
        typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
        msg = email.message_from_bytes(data[0][1])
        names = [part.get_filename() for part in msg.walk() if part.get_filename()]
        assert "chair-specification.pdf" in names
        assert int(conn.select("Sent", readonly=True)[1][0]) == 2
    finally:
        conn.logout()


def test_unreachable_server_says_what_to_do():
    with pytest.raises(report.DemoError, match="services.sh start dovecot"):
        mailbox.append_samples([], report.SeedReport(), host="127.0.0.1", port=1)


def test_wrong_password_says_what_to_do(dovecot):
    login, _ = dovecot.new_user("demo")
    with pytest.raises(report.DemoError, match="refused its password"):
        mailbox.append_samples([], report.SeedReport(), host=dovecot.host, port=dovecot.port,
                            login=login, password="wrong")
