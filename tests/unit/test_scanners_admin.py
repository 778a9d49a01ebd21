"""Mail tools → Mail scanner and Logs → download history: pages, service validation, CLI."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest
from sqlalchemy import event, func, select

from app.crypto import decrypt_secret
from app.extensions import db
from app.models import AuditEntry, Email, MailAccount, MailServer, ScanFolder, ScanRun
from app.services import scanner_fields, scanner_login, scanners
from app.services.scanners import ScannerError
from tests import factories

SECRET = "Sup3r-Secret-Mailbox-Pw"


def make_server(name="Corp IMAP", auth_method="password") -> MailServer:
    server = MailServer(name=name, imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                        smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none", auth_method=auth_method)
    db.session.add(server)
    db.session.commit()
    return server


def make_scanner(server, name="Sales", login="sales@corp.test", password=SECRET, **kw) -> MailAccount:
    return scanners.create_scanner(name, server.id, login, password, kw.pop("folders", None), **kw)


def form_data(client, url, **fields):
    """The fields of a scanner form with its CSRF token, folder rows given as (name, direction)."""
    page = client.get(url)
    assert page.status_code == 200
    data = {"csrf_token": factories.csrf_from(page)}
    folders = fields.pop("folders", [("INBOX", "incoming"), ("Sent", "outgoing")])
    for i, (name, direction) in enumerate(folders):
        data[f"folders-{i}-name"] = name
        data[f"folders-{i}-direction"] = direction
    data.update(fields)
    return data


@pytest.fixture
def server(app):
    return make_server()


@pytest.fixture
def logged_in(client, auth, admin):
    auth.login("admin")
    return client


# ------------------------------------------------------------------ add / edit through the pages


def test_add_scanner_through_the_page_encrypts_the_password(app, logged_in, server, user):
    client = logged_in
    data = form_data(client, "/admin/scanners/new", name="Sales desk", server_id=str(server.id),
                     login="sales@corp.test", password=SECRET, actions=["create_email", "bind_email",
                                                                         "create_ticket"],
                     search_fields=["contacts", "users"], assignee_id=str(user.id),
                     folders=[("INBOX", "incoming"), ("Archive/2024", "incoming"), ("Sent", "outgoing"),
                              ("Trash", "")])
    response = client.post("/admin/scanners/new", data=data)
    assert response.status_code == 302, response.data
    account = db.session.scalar(select(MailAccount))
    assert account.name == "Sales desk"
    assert account.login == "sales@corp.test"
    assert account.action_list == ["create_email", "bind_email", "create_ticket"]
    assert account.search_field_list == ["contacts", "users"]
    assert account.assignee_id == user.id
    # "Don't scan" rows are not stored.
    assert [(f.name, f.direction) for f in account.folders] == [
        ("INBOX", "incoming"), ("Archive/2024", "incoming"), ("Sent", "outgoing")]
    # Encrypted at rest: the raw column is not the password, but decrypts to it.
    raw = db.session.execute(select(MailAccount.password_enc)).scalar_one()
    assert raw != SECRET and SECRET not in raw
    assert decrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], raw) == SECRET
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "mail_scanner.create"))
    assert audit is not None and SECRET not in audit.details
    # The list shows it, and no page ever carries the password back.
    listing = client.get("/admin/scanners")
    assert b"Sales desk" in listing.data and b"Archive/2024" in listing.data
    assert b"Create a ticket" in listing.data
    for url in ("/admin/scanners", f"/admin/scanners/{account.id}/edit", "/admin/history"):
        assert SECRET.encode() not in client.get(url).data


def test_new_form_offers_the_defaults(logged_in, server):
    page = logged_in.get("/admin/scanners/new").data.decode()
    assert 'name="folders-0-name"' in page and 'value="INBOX"' in page and 'value="Sent"' in page
    assert re.search(r'name="folders-1-direction".*?<option selected value="outgoing">', page, re.S)
    assert 'id="load-folders"' in page and "scanners.js" in page
    assert "<script>" not in page  # the CSP forbids inline scripts


def test_edit_with_empty_password_keeps_it_and_keeps_folder_progress(app, logged_in, server):
    client = logged_in
    account = make_scanner(server)
    raw_before = account.password_enc
    inbox = account.folders[0]
    inbox.uidvalidity, inbox.last_uid = 777, 42
    db.session.commit()
    url = f"/admin/scanners/{account.id}/edit"
    page = client.get(url)
    assert b'type="password"' in page.data and SECRET.encode() not in page.data
    assert b"Leave empty to keep the stored password." in page.data
    data = form_data(client, url, name="Sales renamed", server_id=str(server.id), login="sales@corp.test",
                     password="", actions=["create_email"], search_fields=["contacts"], assignee_id="0",
                     folders=[("INBOX", "incoming"), ("Support", "incoming")])
    response = client.post(url, data=data)
    assert response.status_code == 302, response.data
    db.session.expire_all()
    account = db.session.get(MailAccount, account.id)
    assert account.name == "Sales renamed"
    assert account.password_enc == raw_before
    assert [(f.name, f.direction) for f in account.folders] == [("INBOX", "incoming"), ("Support", "incoming")]
    inbox = db.session.scalar(select(ScanFolder).where(ScanFolder.account_id == account.id,
                                                       ScanFolder.name == "INBOX"))
    assert (inbox.uidvalidity, inbox.last_uid) == (777, 42)
    # A new password replaces the stored one, still encrypted.
    data = form_data(client, url, name="Sales renamed", server_id=str(server.id), login="sales@corp.test",
                     password="another-pw", actions=["create_email"], search_fields=["contacts"],
                     assignee_id="0")
    assert client.post(url, data=data).status_code == 302
    db.session.expire_all()
    raw = db.session.get(MailAccount, account.id).password_enc
    assert raw != raw_before and "another-pw" not in raw
    assert decrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], raw) == "another-pw"


GARBAGE = [
    ({"name": ""}, b"A name of 1 to 100 characters is required"),
    ({"name": "x" * 101}, b"A name of 1 to 100 characters is required"),
    ({"login": "   "}, b"The login (usually the mailbox&#39;s e-mail address) is required."),
    ({"password": ""}, b"The password is required"),
    ({"server_id": "999"}, b"Choose an existing mail server"),
    ({"server_id": "garbage"}, b"Choose an existing mail server"),
    ({"assignee_id": "999"}, b"The chosen assignee does not exist"),
    ({"actions": ["create_email", "explode"]}, b"Unknown action: explode"),
    ({"search_fields": ["contacts", "planets"]}, b"Unknown search field: planets"),
    ({"folders": [("", "incoming"), ("Trash", "")]}, b"Choose at least one folder to scan"),
    ({"folders": [("IN\x07BOX", "incoming")]}, b"may not contain control characters"),
    ({"folders": [("INBOX", "sideways")]}, b"the direction must be incoming or outgoing"),
    ({"folders": [("INBOX", "incoming"), ("inbox", "outgoing")]}, b"is listed twice"),
]


def test_garbage_is_refused_with_plain_messages(logged_in, server):
    # One login for every case: each is a separate POST of the real form.
    client = logged_in
    for fields, message in GARBAGE:
        base = {"name": "Sales", "server_id": str(server.id), "login": "sales@corp.test", "password": SECRET,
                "actions": ["create_email"], "search_fields": ["contacts"], "assignee_id": "0"}
        base.update(fields)
        response = client.post("/admin/scanners/new", data=form_data(client, "/admin/scanners/new", **base))
        assert response.status_code == 200, fields
        assert message in response.data, fields
        assert SECRET.encode() not in response.data
    assert db.session.scalar(select(func.count()).select_from(MailAccount)) == 0


def test_password_is_optional_on_oauth_servers(app):
    oauth = make_server("Cloud", auth_method="oauth2")
    account = scanners.create_scanner("Cloud box", oauth.id, "box@corp.test", None, None)
    assert account.password_enc is None
    with pytest.raises(ScannerError) as err:
        scanners.create_scanner("No pw", make_server().id, "x@corp.test", "", None)
    assert "password" in err.value.errors


def test_service_validation_collects_every_problem(app, server):
    with pytest.raises(ScannerError) as err:
        scanners.create_scanner("", 12345, "", "", [], ["nope"], ["nope"], 999)
    assert set(err.value.errors) == {"name", "login", "server_id", "assignee_id", "folders", "actions",
                                     "search_fields"}
    with pytest.raises(scanners.ScannerNotFound):
        scanners.update_scanner(424242, name="x", server_id=server.id, login="l", folders=[("INBOX", "incoming")],
                                actions=[], search_fields=[])


def test_parse_folders_reads_the_cli_notation():
    assert scanner_fields.parse_folders("INBOX, Sent:outgoing,Projects:2024,Team:Incoming") == [
        ("INBOX", "incoming"), ("Sent", "outgoing"), ("Projects:2024", "incoming"), ("Team", "incoming")]
    assert scanner_fields.parse_folders("INBOX\nSent:outgoing\n") == [("INBOX", "incoming"), ("Sent", "outgoing")]


def test_changing_login_starts_the_folders_over_and_clears_a_block(app, server):
    account = make_scanner(server)
    account.folders[0].uidvalidity, account.folders[0].last_uid = 5, 99
    account.health, account.blocked_reason, account.login_failures = "blocked", "AUTHENTICATIONFAILED", 3
    db.session.commit()
    scanners.update_scanner(account.id, name="Sales", server_id=server.id, login="other@corp.test",
                            folders=[("INBOX", "incoming")], actions=["create_email"], search_fields=["contacts"])
    db.session.expire_all()
    account = db.session.get(MailAccount, account.id)
    assert (account.folders[0].uidvalidity, account.folders[0].last_uid) == (None, 0)
    assert (account.health, account.login_failures, account.blocked_reason) == ("active", 0, None)


# ------------------------------------------------------------------ access, list, enable, delete


def test_non_admins_get_403(client, auth, user):
    auth.login("alice")
    token = factories.csrf_from(client.get("/"))
    for url in ("/admin/scanners", "/admin/scanners/new", "/admin/history", "/admin/scanners/1/progress"):
        assert client.get(url).status_code == 403, url
    for url in ("/admin/scanners/folders", "/admin/scanners/1/disable", "/admin/scanners/1/scan",
                "/admin/history/1/stop"):
        assert client.post(url, data={"csrf_token": token}).status_code == 403, url


def test_adding_a_scanner_without_any_server_says_what_to_do(logged_in):
    response = logged_in.get("/admin/scanners/new")
    assert response.status_code == 302
    page = logged_in.get(response.headers["Location"]).data
    assert b"Add a mail server first" in page and b"No mail scanner yet." in page


def test_anonymous_is_sent_to_login(client):
    response = client.get("/admin/scanners")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def _post(client, url, page_url="/admin/scanners"):
    return client.post(url, data={"csrf_token": factories.csrf_from(client.get(page_url))})


def test_enable_disable_and_health_on_the_list(logged_in, server):
    client = logged_in
    account = make_scanner(server)
    assert _post(client, f"/admin/scanners/{account.id}/disable").status_code == 302
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).enabled is False
    page = client.get("/admin/scanners").data
    assert b"status-disabled" in page and b">Enable</button>" in page
    # A disabled scanner is not scanned, not even by hand.
    response = _post(client, f"/admin/scanners/{account.id}/scan")
    assert b"is disabled: enable it first" in client.get(response.headers["Location"]).data
    assert db.session.scalar(select(func.count()).select_from(ScanRun)) == 0
    assert _post(client, f"/admin/scanners/{account.id}/enable").status_code == 302
    db.session.expire_all()
    account = db.session.get(MailAccount, account.id)
    assert account.enabled is True
    account.health, account.blocked_reason = "blocked", "[AUTHENTICATIONFAILED] Authentication failed."
    account.last_run_at, account.last_run_status = datetime(2026, 1, 2, 3, 4), "failed"
    account.last_error = "The server refused the login: wrong password."
    db.session.commit()
    page = client.get("/admin/scanners").data
    assert b"Blocked: [AUTHENTICATIONFAILED] Authentication failed." in page
    assert b"2026-01-02 03:04" in page and b"The server refused the login: wrong password." in page
    actions = [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions[-2:] == ["mail_scanner.disable", "mail_scanner.enable"]


def test_delete_removes_the_scanner_and_its_history(logged_in, server):
    client = logged_in
    account = make_scanner(server)
    keep = make_scanner(server, name="Support", login="support@corp.test")
    db.session.add_all([ScanRun(account_id=account.id, status="done"), ScanRun(account_id=keep.id, status="done"),
                        Email(account_id=account.id, folder="INBOX", uidvalidity=1, uid=1, message_key="<a@x>",
                              raw=b"x")])
    db.session.commit()
    page = client.get("/admin/scanners")
    assert b'data-confirm="Delete the scanner Sales?' in page.data
    assert _post(client, f"/admin/scanners/{account.id}/delete").status_code == 302
    assert db.session.get(MailAccount, account.id) is None
    assert db.session.scalar(select(func.count()).select_from(ScanRun)) == 1
    assert db.session.scalar(select(func.count()).select_from(Email)) == 0
    assert db.session.get(MailAccount, keep.id) is not None


def test_unknown_ids_are_404_not_500(logged_in):
    client = logged_in
    assert client.get("/admin/scanners/9999/edit").status_code == 404
    assert _post(client, "/admin/scanners/9999/delete").status_code == 404
    assert _post(client, "/admin/scanners/9999/enable").status_code == 404
    assert _post(client, "/admin/scanners/9999/test-login").status_code == 404
    assert client.get("/admin/scanners/9999/progress").status_code == 404
    assert _post(client, "/admin/history/9999/stop", "/admin/history").status_code == 404


def test_folder_list_endpoint_explains_what_is_missing(logged_in, server):
    client = logged_in
    token = factories.csrf_from(client.get("/admin/scanners"))
    response = client.post("/admin/scanners/folders", data={"csrf_token": token, "server_id": "999",
                                                            "login": "x"})
    assert response.status_code == 400 and "mail server" in response.get_json()["error"]
    response = client.post("/admin/scanners/folders", data={"csrf_token": token, "server_id": str(server.id),
                                                            "login": "sales@corp.test", "password": ""})
    assert response.status_code == 400 and "Type the password" in response.get_json()["error"]
    # Without the CSRF token the request is refused outright.
    assert factories.csrf_refused(client.post("/admin/scanners/folders", data={"server_id": str(server.id)}))


def test_stored_password_is_used_only_for_its_own_mailbox(app, server):
    account = make_scanner(server)
    other = make_server("Elsewhere")
    # Another login or server: the stored password is never sent there, so one must be typed.
    with pytest.raises(ScannerError, match="Type the password"):
        scanner_login.list_server_folders(server.id, "someone@else.test", None, account.id)
    with pytest.raises(ScannerError, match="Type the password"):
        scanner_login.list_server_folders(other.id, account.login, None, account.id)


# ------------------------------------------------------------------ download history


def _runs(account, count, *, start, status="done", step=timedelta(minutes=5), **fields):
    runs = []
    for i in range(count):
        started = start + i * step
        runs.append(ScanRun(account_id=account.id, started_at=started, finished_at=started + timedelta(seconds=30),
                            status=status, trigger="schedule", downloaded=i + 1, created=i, **fields))
    db.session.add_all(runs)
    db.session.commit()
    return runs


def test_history_lists_runs_with_counters_and_errors(logged_in, server):
    client = logged_in
    account = make_scanner(server)
    db.session.add(ScanRun(
        account_id=account.id, started_at=datetime(2026, 3, 1, 10, 0), finished_at=datetime(2026, 3, 1, 10, 2, 5),
        status="partial", downloaded=17, created=12, bound=9, tickets_created=3, tickets_reopened=2, ignored=4,
        duplicates=1, errors=2, error_details=json.dumps([
            {"folder": "INBOX", "uid": 41, "reason": "broken MIME boundary"},
            {"folder": "Sent", "uid": 7, "reason": "unknown charset x-klingon"}])))
    db.session.commit()
    page = client.get("/admin/history").data.decode()
    assert "Sales" in page and "2026-03-01 10:00:00" in page and "2 min 5 s" in page
    row = page[page.index('id="run-'):]
    for value in ("17", "12", "9", "3", "2", "4"):
        assert f"<td>{value}</td>" in row
    assert "<details>" in page and "INBOX / UID 41: broken MIME boundary" in page
    assert "Sent / UID 7: unknown charset x-klingon" in page
    assert "<svg" in page and page.count("<rect") == 1


def test_history_filters_and_pagination(logged_in, server):
    client = logged_in
    sales = make_scanner(server)
    support = make_scanner(server, name="Support", login="support@corp.test")
    _runs(sales, 60, start=datetime(2026, 1, 1))
    _runs(support, 3, start=datetime(2026, 2, 10), status="failed", message="Login refused: wrong password.")
    page1 = client.get("/admin/history").data.decode()
    assert page1.count('id="run-') == 50
    # Newest first: the support runs of February lead.
    assert page1.index("2026-02-10 00:10:00") < page1.index("2026-01-01 04:55:00")
    assert "Page 1 of 2" in page1
    page2 = client.get("/admin/history?page=2").data.decode()
    assert page2.count('id="run-') == 13
    only_support = client.get(f"/admin/history?mailbox={support.id}").data.decode()
    assert only_support.count('id="run-') == 3 and "Login refused: wrong password." in only_support
    failed = client.get("/admin/history?status=failed").data.decode()
    assert failed.count('id="run-') == 3
    february = client.get("/admin/history?since=2026-02-01").data.decode()
    assert february.count('id="run-') == 3 and "Login refused" in february
    january = client.get("/admin/history?since=2026-01-01&until=2026-01-01").data.decode()
    # "To" includes the whole day: the 60 January runs, 50 on the first page, and no February run.
    assert january.count('id="run-') == 50 and "Page 1 of 2" in january
    assert "2026-02-10" not in january.split("<table", 1)[1]
    none = client.get("/admin/history?since=2026-02-11").data.decode()
    assert 'id="run-' not in none and "No scan run matches these filters." in none
    # Filters survive paging.
    paged = client.get(f"/admin/history?mailbox={sales.id}").data.decode()
    assert f"mailbox={sales.id}" in paged.split('class="pager"', 1)[1]
    # The chart shows at most 100 runs of the filtered set.
    assert paged.count("<rect") == 60
    assert client.get("/admin/history?since=garbage&mailbox=abc").status_code == 200


def test_history_page_query_count_does_not_grow_with_rows(app, logged_in, server):
    client = logged_in
    accounts = [make_scanner(server, name=f"Box {i}", login=f"box{i}@corp.test") for i in range(5)]
    for a in accounts:
        _runs(a, 2, start=datetime(2026, 1, 1))

    def count_queries():
        statements = []

        def before(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            assert client.get("/admin/history").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
        return len(statements)

    few = count_queries()
    for a in accounts:
        _runs(a, 8, start=datetime(2026, 1, 2))
    assert count_queries() == few


# ------------------------------------------------------------------ command line


def test_cli_scanners_add_prints_the_id(app, runner, server, user):
    result = runner.invoke(args=[
        "scanners", "add", "--server", server.name, "--name", "Sales", "--login", "sales@corp.test",
        "--password", SECRET, "--folders", "INBOX,Sent:outgoing",
        "--actions", "create_email,bind_email,open_ticket,create_ticket",
        "--search-fields", "contacts,organizations,leads,users", "--user", user.username])
    assert result.exit_code == 0, result.output
    account_id = int(result.stdout.strip())
    account = db.session.get(MailAccount, account_id)
    assert account.name == "Sales" and account.assignee_id == user.id
    assert [(f.name, f.direction) for f in account.folders] == [("INBOX", "incoming"), ("Sent", "outgoing")]
    assert account.action_list == ["create_email", "bind_email", "open_ticket", "create_ticket"]
    assert account.password_enc != SECRET
    listing = runner.invoke(args=["scanners", "list"])
    assert f"{account_id}\tSales\t{server.name}\tsales@corp.test\tINBOX,Sent:outgoing" in listing.output
    assert SECRET not in listing.output
    assert runner.invoke(args=["scanners", "disable", str(account_id)]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(MailAccount, account_id).enabled is False
    assert runner.invoke(args=["scanners", "enable", str(account_id)]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(MailAccount, account_id).enabled is True


def test_cli_scanners_add_refuses_garbage_in_words(app, runner, server):
    result = runner.invoke(args=["scanners", "add", "--server", "nowhere", "--login", "a@b", "--password", "x"])
    assert result.exit_code != 0 and "no mail server named 'nowhere'" in result.output
    result = runner.invoke(args=["scanners", "add", "--server", server.name, "--login", "a@b", "--password", "x",
                                 "--actions", "create_email,teleport"])
    assert result.exit_code != 0 and "Unknown action: teleport" in result.output
    result = runner.invoke(args=["scanners", "disable", "4242"])
    assert result.exit_code != 0 and "no mail scanner with id" in result.output
    assert db.session.scalar(select(func.count()).select_from(MailAccount)) == 0


def test_cli_logs_list_json(app, runner, server):
    sales = make_scanner(server)
    support = make_scanner(server, name="Support", login="support@corp.test")
    _runs(sales, 3, start=datetime(2026, 1, 1))
    _runs(support, 1, start=datetime(2026, 1, 2), status="partial", errors=1,
          error_details=json.dumps([{"folder": "INBOX", "uid": 3, "reason": "bad charset"}]))
    result = runner.invoke(args=["logs", "list", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.output)
    assert len(runs) == 4
    first = runs[0]
    assert first["mailbox"] == "Support" and first["status"] == "partial"
    for key in ("downloaded", "created", "bound", "tickets_created", "tickets_reopened", "ignored", "duplicates",
                "also_in", "errors", "started_at", "finished_at", "duration_seconds", "mailbox_id"):
        assert key in first
    assert first["error_details"] == [{"folder": "INBOX", "uid": 3, "reason": "bad charset"}]
    assert first["duration_seconds"] == 30
    only = json.loads(runner.invoke(args=["logs", "list", "--json", "--mailbox", str(sales.id),
                                          "--limit", "2"]).output)
    assert [r["mailbox"] for r in only] == ["Sales", "Sales"]
    assert json.loads(runner.invoke(args=["logs", "list", "--json", "--status", "failed"]).output) == []
    text = runner.invoke(args=["logs", "list"]).output
    assert "Support" in text and "partial" in text


# ------------------------------------------------------------------ Scan now, progress, Stop


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_scan_now_runs_and_the_list_shows_the_readable_failure(app, logged_in):
    # QUEUE_MODE is "inline" in tests: the scan runs in the request, against a port nobody listens on.
    client = logged_in
    server = make_server()
    server.imap_port = _closed_port()
    db.session.commit()
    account = make_scanner(server)
    page = client.get("/admin/scanners")
    assert f'data-progress-url="/admin/scanners/{account.id}/progress"'.encode() in page.data
    response = _post(client, f"/admin/scanners/{account.id}/scan")
    assert response.status_code == 302
    flashed = client.get(response.headers["Location"]).data.decode()
    assert f"Scan of {account.name} finished: failed." in flashed
    run = db.session.scalar(select(ScanRun).where(ScanRun.account_id == account.id))
    assert run is not None and run.status == "failed" and run.trigger == "manual"
    assert run.message and SECRET not in run.message
    listing = client.get("/admin/scanners").data.decode()
    assert "failed" in listing and run.message.split(":")[0] in listing
    progress = client.get(f"/admin/scanners/{account.id}/progress")
    assert progress.status_code == 200
    assert progress.get_json()["state"] == "idle"
    assert "failed" in client.get("/admin/history").data.decode()


def test_stop_button_records_who_stopped_the_run(logged_in, admin, server):
    client = logged_in
    account = make_scanner(server)
    running = ScanRun(account_id=account.id, status="running", started_at=datetime(2026, 5, 1, 9, 0))
    done = ScanRun(account_id=account.id, status="done", started_at=datetime(2026, 5, 1, 8, 0),
                   finished_at=datetime(2026, 5, 1, 8, 1))
    db.session.add_all([running, done])
    db.session.commit()
    page = client.get("/admin/history").data.decode()
    assert f"/admin/history/{running.id}/stop" in page
    assert f"/admin/history/{done.id}/stop" not in page  # only running rows can be stopped
    response = client.post(f"/admin/history/{running.id}/stop",
                           data={"csrf_token": factories.csrf_from(client.get("/admin/history")),
                                 "next": "/admin/history?status=running"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/admin/history?status=running")
    db.session.expire_all()
    run = db.session.get(ScanRun, running.id)
    assert run.stop_requested is True and run.stopped_by_id == admin.id
    page = client.get("/admin/history").data.decode()
    assert "stop requested by Admin" in page
    assert f"/admin/history/{running.id}/stop" not in page
    # Once the engine has stopped it, the row says who did.
    run.status, run.finished_at = "stopped", datetime(2026, 5, 1, 9, 3)
    db.session.commit()
    assert "stopped by Admin" in client.get("/admin/history").data.decode()
    # Stopping a run that has ended is explained, not an error; an outside "next" is not followed.
    response = client.post(f"/admin/history/{done.id}/stop",
                           data={"csrf_token": factories.csrf_from(client.get("/admin/history")),
                                 "next": "https://evil.test/"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/history"
    assert db.session.get(ScanRun, done.id).stop_requested is False
