"""Alerts: stale scanners and hung runs open an alert, recovery closes it, administrators are told.

The e-mails go to a real SMTP server (aiosmtpd) started in-process on a free port.
"""

from __future__ import annotations

import email
import email.policy
import email.utils
import logging
import socket
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller

from app.extensions import db
from app.models import Alert, MailAccount, MailServer, MailSettings, ScanRun
from app.models.base import utcnow
from app.services.alerts import check_alerts
from tests import factories


class _Collect:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, email.message_from_bytes(envelope.content,
                                                                          policy=email.policy.default)))
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp(app, monkeypatch):
    """A real SMTP server in this process; the app sends alert e-mails to it."""
    handler = _Collect()
    # aiosmtpd logs each connection from its own thread, after the test's output capture ended.
    monkeypatch.setattr(logging.getLogger("mail.log"), "level", logging.WARNING)
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setitem(app.config, "ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "ALERT_SMTP_PORT", port)
    monkeypatch.setitem(app.config, "ALERT_SMTP_FROM", "alerts@corp.test")
    yield handler
    controller.stop()


@pytest.fixture
def no_smtp(app, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_SMTP_HOST", None)


def _account(name="Support box", *, last_success_minutes=None, created_minutes=300, enabled=True) -> MailAccount:
    server = db.session.query(MailServer).first()
    if server is None:
        server = MailServer(name="Main", imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                            smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
        db.session.add(server)
    now = utcnow()
    account = MailAccount(name=name, server=server, login=f"{name.split()[0].lower()}@corp.test", enabled=enabled,
                          created_at=now - timedelta(minutes=created_minutes),
                          last_success_at=(now - timedelta(minutes=last_success_minutes)
                                           if last_success_minutes is not None else None))
    db.session.add(account)
    db.session.commit()
    return account


def _open(kind=None):
    query = db.session.query(Alert).filter(Alert.closed_at.is_(None))
    if kind:
        query = query.filter(Alert.kind == kind)
    return query.all()


def test_fresh_scanners_raise_no_alert(app, no_smtp):
    _account(last_success_minutes=10)
    _account("New box", created_minutes=5)
    changes = check_alerts()
    assert not changes.changed
    assert _open() == []


def test_no_success_opens_once_and_recovery_closes(app, smtp, admin):
    factories.user(username="ops", admin=True, email="ops@corp.test")
    factories.user(username="clerk", email="clerk@corp.test")
    account = _account(last_success_minutes=200)
    account.last_error = "Login refused by the server"
    db.session.commit()

    changes = check_alerts()
    assert [a.kind for a in changes.opened] == ["no_success"]
    assert changes.mailed
    (alert,) = _open()
    assert alert.account_id == account.id
    assert "Support box" in alert.message and "Login refused" in alert.message
    rcpts, message = smtp.messages[-1]
    assert sorted(rcpts) == ["admin@corp.test", "ops@corp.test"]  # administrators only
    assert "1 new" in message["Subject"]
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Support box" in message.get_content()

    # Still stale: no second alert, no second e-mail.
    assert not check_alerts().changed
    assert len(_open()) == 1
    assert len(smtp.messages) == 1

    account.last_success_at = utcnow()
    db.session.commit()
    changes = check_alerts()
    assert len(changes.closed) == 1
    assert _open() == []
    assert db.session.get(Alert, alert.id).closed_at is not None
    assert "1 recovered" in smtp.messages[-1][1]["Subject"]


def test_alert_mail_carries_date_and_message_id(app, smtp, admin):
    _account(last_success_minutes=200)
    before = utcnow().replace(microsecond=0)
    assert check_alerts().mailed
    _, message = smtp.messages[-1]
    sent = email.utils.parsedate_to_datetime(message["Date"])
    assert sent.utcoffset() == timedelta(0)
    assert before <= sent.replace(tzinfo=None) <= utcnow()
    message_id = message["Message-ID"]
    assert message_id.startswith("<") and message_id.endswith("@corp.test>")
    # Each e-mail gets its own id.
    account = db.session.scalars(db.select(MailAccount)).one()
    account.last_success_at = utcnow()
    db.session.commit()
    assert check_alerts().mailed
    assert smtp.messages[-1][1]["Message-ID"] != message_id


def test_never_succeeded_counts_from_creation(app, no_smtp, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_NO_SUCCESS_MINUTES", 60)
    _account("Old box", created_minutes=90)
    _account("Young box", created_minutes=30)
    check_alerts()
    (alert,) = _open()
    assert "Old box" in alert.message and "never" in alert.message


def test_hung_run_opens_and_closes(app, no_smtp):
    account = _account(last_success_minutes=5)
    MailSettings.get().run_timeout_minutes = 30
    run = ScanRun(account_id=account.id, status="running", started_at=utcnow() - timedelta(minutes=45))
    db.session.add(run)
    db.session.commit()
    changes = check_alerts()
    assert [a.kind for a in changes.opened] == ["hung_run"]
    assert f"run #{run.id}" in _open("hung_run")[0].message

    run.status = "stopped"
    run.finished_at = utcnow()
    db.session.commit()
    check_alerts()
    assert _open() == []


def test_a_long_archive_import_alerts_only_when_its_heartbeat_stops(app, no_smtp):
    account = _account(last_success_minutes=5)
    MailSettings.get().run_timeout_minutes = 30
    run = ScanRun(account_id=account.id, status="running", started_at=utcnow() - timedelta(minutes=45),
                  heartbeat_at=utcnow() - timedelta(minutes=1), archived=4000)
    db.session.add(run)
    db.session.commit()
    assert check_alerts().opened == []
    run.heartbeat_at = utcnow() - timedelta(minutes=40)
    db.session.commit()
    assert [a.kind for a in check_alerts().opened] == ["hung_run"]


def test_disabled_scanner_never_alerts_and_disabling_closes(app, no_smtp):
    _account("Off box", last_success_minutes=500, enabled=False)
    account = _account("On box", last_success_minutes=500)
    check_alerts()
    assert len(_open()) == 1
    account.enabled = False
    db.session.commit()
    check_alerts()
    assert _open() == []


def test_without_smtp_the_skip_is_logged(app, no_smtp, caplog):
    _account(last_success_minutes=500)
    with caplog.at_level(logging.INFO, logger="app.services.alerts"):
        changes = check_alerts()
    assert changes.opened and not changes.mailed
    assert "ALERT_SMTP_HOST is not set" in caplog.text


def test_dead_smtp_server_does_not_lose_the_alert(app, admin, monkeypatch):
    monkeypatch.setitem(app.config, "ALERT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "ALERT_SMTP_PORT", _free_port())
    _account(last_success_minutes=500)
    changes = check_alerts()
    assert changes.opened and not changes.mailed
    assert len(_open()) == 1


def test_banner_shows_open_alerts_to_administrators_only(app, client, admin, user, auth, no_smtp):
    _account("Stale box", last_success_minutes=500)
    check_alerts()
    auth.login("admin")
    page = client.get("/").get_data(as_text=True)
    assert "alerts-banner" in page and "Stale box" in page
    auth.logout()
    auth.login("alice")
    page = client.get("/").get_data(as_text=True)
    assert "alerts-banner" not in page


def test_scheduled_check_runs_in_its_own_app_context(app, no_smtp):
    from app.services.alerts import scheduled_check

    _account(last_success_minutes=500)
    changes = scheduled_check(app)
    assert [a.kind for a in changes.opened] == ["no_success"]
    assert len(_open()) == 1


def test_alert_mail_logs_in_when_a_user_is_configured(app, admin, no_smtp, monkeypatch):
    from aiosmtpd.smtp import AuthResult

    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"relay-pw")

    monkeypatch.setattr(logging.getLogger("mail.log"), "level", logging.WARNING)
    handler = _Collect()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, authenticator=authenticator,
                            auth_require_tls=False)
    controller.start()
    try:
        monkeypatch.setitem(app.config, "ALERT_SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "ALERT_SMTP_PORT", port)
        monkeypatch.setitem(app.config, "ALERT_SMTP_USER", "relay")
        monkeypatch.setitem(app.config, "ALERT_SMTP_PASSWORD", "relay-pw")
        _account(last_success_minutes=500)
        changes = check_alerts()
    finally:
        controller.stop()
    assert changes.mailed
    assert seen == [(b"relay", b"relay-pw")]
    assert len(handler.messages) == 1
