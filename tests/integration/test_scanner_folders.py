"""Scanner admin against the real Dovecot: the server's folder list, wrong passwords, test login, Scan now."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import AuditEntry, MailAccount, MailServer, ScanRun
from app.services import scanner_login, scanners
from app.services.scanners import ScannerError
from tests import factories

pytestmark = pytest.mark.integration

MESSAGE = (b"From: Jane Doe <jane@acme.test>\r\nTo: {login}\r\nSubject: Hello from Acme\r\n"
           b"Message-ID: <{n}.scanner-admin@acme.test>\r\nDate: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\nHi there.\r\n")


@pytest.fixture
def server(app, dovecot):
    row = MailServer(name="Private Dovecot", imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                     smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none", smtp_auth=False)
    db.session.add(row)
    db.session.commit()
    return row


@pytest.fixture
def mailbox(dovecot):
    """A fresh Dovecot user with a message in INBOX and one in an extra folder; (login, password)."""
    login, password = dovecot.new_user("folders")
    dovecot.append(login, password, "INBOX", MESSAGE.replace(b"{login}", login.encode()).replace(b"{n}", b"1"))
    dovecot.append(login, password, "Projects", MESSAGE.replace(b"{login}", login.encode()).replace(b"{n}", b"2"))
    yield login, password
    dovecot.reset_mailbox(login)


def test_list_server_folders_returns_the_real_folders(server, mailbox):
    login, password = mailbox
    names = scanner_login.list_server_folders(server.id, login, password)
    assert names[0] == "INBOX"
    assert "Projects" in names


def test_folder_list_on_edit_uses_the_stored_password(server, mailbox):
    login, password = mailbox
    account = scanners.create_scanner("Folders", server.id, login, password, None)
    assert "Projects" in scanner_login.list_server_folders(server.id, login, None, account.id)


def test_wrong_password_gives_a_readable_error_without_the_password(server, mailbox):
    login, _ = mailbox
    with pytest.raises(ScannerError) as err:
        scanner_login.list_server_folders(server.id, login, "Wrong-Secret-123")
    message = str(err.value)
    assert "refused the login" in message and login in message
    assert "Wrong-Secret-123" not in message


def test_load_folders_button_endpoint(client, auth, admin, server, mailbox):
    login, password = mailbox
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/scanners/new"))
    response = client.post("/admin/scanners/folders", data={"csrf_token": token, "server_id": str(server.id),
                                                            "login": login, "password": password})
    assert response.status_code == 200
    folders = response.get_json()["folders"]
    assert folders[0] == "INBOX" and "Projects" in folders
    response = client.post("/admin/scanners/folders", data={"csrf_token": token, "server_id": str(server.id),
                                                            "login": login, "password": "nope-nope"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert "refused the login" in error and "nope-nope" not in error


def test_test_login_unblocks_a_blocked_scanner(client, auth, admin, server, mailbox):
    login, password = mailbox
    account = scanners.create_scanner("Blocked box", server.id, login, password, None)
    account.health, account.login_failures = "blocked", 3
    account.blocked_reason = "Blocked after 3 failed logins in a row."
    db.session.commit()
    auth.login("admin")
    page = client.get("/admin/scanners")
    assert b"Blocked after 3 failed logins in a row." in page.data and b"status-blocked" in page.data
    response = client.post(f"/admin/scanners/{account.id}/test-login",
                           data={"csrf_token": factories.csrf_from(page)}, follow_redirects=True)
    assert b"The scanner is unblocked" in response.data
    db.session.expire_all()
    account = db.session.get(MailAccount, account.id)
    assert (account.health, account.login_failures, account.blocked_reason) == ("active", 0, None)
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "mail_scanner.unblock")) is not None
    assert b"status-active" in client.get("/admin/scanners").data


def test_failed_test_login_leaves_the_block(server, mailbox):
    login, _ = mailbox
    account = scanners.create_scanner("Wrong pw", server.id, login, "not-the-password", None)
    account.health, account.login_failures = "blocked", 3
    db.session.commit()
    result = scanner_login.test_login(account.id)
    assert result.ok is False and "refused the login" in result.message
    assert "not-the-password" not in result.message
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).health == "blocked"


def test_scan_now_from_the_list_stores_the_mail_and_shows_in_history(client, auth, admin, server, mailbox):
    # Tests run with QUEUE_MODE=inline: Scan now runs the scan in the request.
    login, password = mailbox
    auth.login("admin")
    data = {"csrf_token": factories.csrf_from(client.get("/admin/scanners/new")), "name": "Acme desk",
            "server_id": str(server.id), "login": login, "password": password,
            "folders-0-name": "INBOX", "folders-0-direction": "incoming",
            "folders-1-name": "Projects", "folders-1-direction": "incoming",
            "actions": ["create_email", "bind_email"], "search_fields": ["contacts"], "assignee_id": "0"}
    assert client.post("/admin/scanners/new", data=data).status_code == 302
    account = db.session.scalar(select(MailAccount).where(MailAccount.login == login))
    page = client.get("/admin/scanners")
    response = client.post(f"/admin/scanners/{account.id}/scan", data={"csrf_token": factories.csrf_from(page)})
    assert response.status_code == 302
    run = db.session.scalar(select(ScanRun).where(ScanRun.account_id == account.id))
    assert run.status == "done", run.message
    assert run.downloaded == 2 and run.created == 2
    history = client.get(f"/admin/history?mailbox={account.id}").data.decode()
    assert "Acme desk" in history and history.count('id="run-') == 1
    assert client.get(f"/admin/scanners/{account.id}/progress").get_json()["state"] == "idle"
