"""The demo seed: idempotent records, and sample mail appended once into a real Dovecot."""

from __future__ import annotations

import email

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import AutologinGrant, Contact, MailAccount, MailServer, User
from app.services import demo
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
    samples = demo.sample_messages("TT-000001")
    report = demo.SeedReport()
    demo.append_samples(samples, report, host=dovecot.host, port=dovecot.port, login=login, password=password)
    assert report.appended == len(samples) >= 12
    again = demo.SeedReport()
    demo.append_samples(samples, again, host=dovecot.host, port=dovecot.port, login=login, password=password)
    assert again.appended == 0 and again.already_there == len(samples)

    conn = dovecot.connect(login, password)
    try:
        typ, data = conn.select("INBOX", readonly=True)
        inbox = int(data[0])
        assert inbox == sum(1 for s in samples if s.folder == "INBOX")
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
    with pytest.raises(demo.DemoError, match="services.sh start dovecot"):
        demo.append_samples([], demo.SeedReport(), host="127.0.0.1", port=1)


def test_wrong_password_says_what_to_do(dovecot):
    login, _ = dovecot.new_user("demo")
    with pytest.raises(demo.DemoError, match="refused its password"):
        demo.append_samples([], demo.SeedReport(), host=dovecot.host, port=dovecot.port,
                            login=login, password="wrong")
