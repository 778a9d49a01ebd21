"""The scan engine against the real private Dovecot: from appended messages to e-mails, links and tickets."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.crypto import encrypt_secret
from app.extensions import db
from app.models import Email, EmailLink, MailAccount, MailServer, MailSettings, ScanFolder, ScanRun, Ticket
from app.models.base import utcnow
from app.scanning import liveness
from app.scanning.errors import RETRYABLE_KINDS, ScanAlreadyRunning
from app.scanning.run import run_scan
from app.services import scans
from tests import factories
from tests.ci import unavailable

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def mail(i: int, *, frm="jane@acme.test", to="support@corp.test", subject=None, mid=None,
         in_reply_to=None, body=None) -> bytes:
    lines = [f"From: Jane <{frm}>", f"To: {to}", f"Subject: {subject or f'Question {i}'}",
             f"Date: Mon, 02 Nov 2026 10:{i % 60:02d}:00 +0000", f"Message-ID: <{mid or f'q{i}@acme.test'}>"]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    return ("\r\n".join(lines) + "\r\n\r\n" + (body or f"Hello, this is message {i}.") + "\r\n").encode()


def make_scanner(app, dovecot, login, password, *, folders=(("INBOX", "incoming"),),
                 actions="create_email,bind_email,open_ticket,create_ticket", port=None,
                 assignee=None) -> MailAccount:
    server = MailServer(name=f"dovecot-{login}", imap_host=dovecot.host, imap_port=port or dovecot.port,
                        imap_security="none", smtp_host=dovecot.host, smtp_port=10025, smtp_security="none")
    account = MailAccount(name="Support", server=server, login=login,
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password),
                          actions=actions, assignee_id=assignee.id if assignee else None,
                          folders=[ScanFolder(name=n, direction=d) for n, d in folders])
    db.session.add_all([server, account])
    db.session.commit()
    return account


@pytest.fixture
def box(app, dovecot):
    login, password = dovecot.new_user("scan")
    return login, password


def stored_uids(account_id, folder="INBOX") -> list[int]:
    return list(db.session.scalars(select(Email.uid).where(Email.account_id == account_id, Email.folder == folder)
                                   .order_by(Email.uid)))


def flags(dovecot, login, password, folder="INBOX") -> dict[int, str]:
    conn = dovecot.connect(login, password)
    try:
        conn.select(f'"{folder}"', readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        out = {}
        for line in data or []:
            if isinstance(line, bytes) and b"UID" in line:
                uid = int(re.search(rb"UID (\d+)", line).group(1))
                out[uid] = re.search(rb"FLAGS \(([^)]*)\)", line).group(1).decode()
        return out
    finally:
        conn.logout()


def test_messages_are_stored_bound_and_open_tickets_once(app, dovecot, box):
    login, password = box
    agent = factories.user(username="agent", email="agent@corp.test")
    jane = factories.contact(email="jane@acme.test", org=factories.organization(email="info@acme.test"))
    dovecot.append_many(login, password, "INBOX", [
        mail(1), mail(2, in_reply_to="q1@acme.test", subject="Re: Question 1"),
        mail(3, frm="nobody@unknown.test", subject="Hi")])
    before = flags(dovecot, login, password)
    account = make_scanner(app, dovecot, login, password, assignee=agent)

    run = run_scan(account.id, trigger="manual")

    assert run.status == "done", run.message
    assert (run.downloaded, run.created, run.errors) == (3, 3, 0)
    assert run.tickets_created == 2  # Jane's thread (her reply joins it) and the stranger's message
    jane_ticket = db.session.scalar(select(Ticket).where(Ticket.contact_id == jane.id))
    assert jane_ticket.assignee_id == agent.id and jane_ticket.number.startswith("TT-")
    linked = set(db.session.scalars(select(Email.uid).join(EmailLink, EmailLink.email_id == Email.id).where(
        EmailLink.record_type == "ticket", EmailLink.record_id == jane_ticket.id)))
    assert linked == {1, 2}
    assert db.session.scalar(select(func.count(EmailLink.id)).where(
        EmailLink.record_type == "contact", EmailLink.record_id == jane.id)) == 2
    # Nothing marked read: the scanner only peeks.
    assert flags(dovecot, login, password) == before
    assert all("\\Seen" not in f for f in before.values())
    folder = db.session.scalars(select(ScanFolder).where(ScanFolder.account_id == account.id)).one()
    assert folder.last_uid == 3 and folder.uidvalidity

    again = run_scan(account.id)
    assert again.status == "done" and (again.downloaded, again.created) == (0, 0)
    assert db.session.scalar(select(func.count(Email.id))) == 3
    db.session.refresh(account)
    assert account.last_run_status == "done" and account.running_run_id is None and account.last_success_at


def test_budget_is_respected_and_the_rest_comes_next_run_oldest_first(app, dovecot, box):
    login, password = box
    settings = MailSettings.get()
    settings.max_per_run, settings.batch_size = 3, 2
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 8)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")
    seen = []
    runs = [run_scan(account.id, progress=seen.append) for _ in range(3)]
    assert [r.downloaded for r in runs] == [3, 3, 1]
    assert stored_uids(account.id) == [1, 2, 3, 4, 5, 6, 7]
    first_run_rows = db.session.scalars(select(Email.uid).where(Email.account_id == account.id)
                                        .order_by(Email.id).limit(3)).all()
    assert first_run_rows == [1, 2, 3]
    assert seen and seen[-1]["downloaded"] == 1 and seen[-1]["run_id"] == runs[-1].id


def test_stored_mail_is_counted_per_hour_for_the_start_pages_board(app, dovecot, box):
    from app.models import ScannerActivity
    from app.services import scanner_board

    login, password = box
    settings = MailSettings.get()
    settings.batch_size = 2
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 6)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")

    assert run_scan(account.id).created == 5
    assert run_scan(account.id).created == 0  # nothing new: nothing more counted
    counted = db.session.execute(select(ScannerActivity.hour, ScannerActivity.messages)
                                 .where(ScannerActivity.account_id == account.id)).all()
    assert sum(n for _, n in counted) == 5 == db.session.scalar(
        select(func.count(Email.id)).where(Email.account_id == account.id))
    (tile,) = [t for t in scanner_board.board().tiles if t.id == account.id]
    assert tile.messages == 5 and tile.state == "healthy"


def test_budget_is_shared_by_the_scanners_folders(app, dovecot, box):
    login, password = box
    settings = MailSettings.get()
    settings.max_per_run = 4
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 4)])
    dovecot.append_many(login, password, "Sent", [mail(i, frm="support@corp.test", to="jane@acme.test")
                                                  for i in range(10, 14)])
    account = make_scanner(app, dovecot, login, password, folders=(("INBOX", "incoming"), ("Sent", "outgoing")),
                           actions="create_email")
    run = run_scan(account.id)
    assert run.downloaded == 4
    assert stored_uids(account.id, "INBOX") == [1, 2, 3] and stored_uids(account.id, "Sent") == [1]
    sent = db.session.scalars(select(Email).where(Email.folder == "Sent")).one()
    assert sent.direction == "sent"


def test_changed_uidvalidity_rescans_without_duplicates(app, dovecot, box):
    login, password = box
    first = [mail(i) for i in range(1, 4)]
    dovecot.append_many(login, password, "Work", first)
    account = make_scanner(app, dovecot, login, password, folders=(("Work", "incoming"),), actions="create_email")
    assert run_scan(account.id).created == 3
    old = db.session.scalar(select(ScanFolder.uidvalidity).where(ScanFolder.account_id == account.id))

    conn = dovecot.connect(login, password)
    try:
        assert conn.delete('"Work"')[0] == "OK"
        assert conn.create('"Work"')[0] == "OK"
    finally:
        conn.logout()
    dovecot.append_many(login, password, "Work", [*first, mail(4)])

    run = run_scan(account.id)
    assert run.status == "done", run.message
    assert (run.downloaded, run.created, run.duplicates) == (4, 1, 3)
    new = db.session.scalar(select(ScanFolder.uidvalidity).where(ScanFolder.account_id == account.id))
    assert new != old
    assert db.session.scalar(select(func.count(Email.id))) == 4
    assert db.session.scalar(select(func.count(func.distinct(Email.message_key)))) == 4


def test_wrong_password_fails_readably_blocks_and_recovers(app, dovecot, box):
    login, password = box
    settings = MailSettings.get()
    settings.block_after_failures = 2
    db.session.commit()
    dovecot.append(login, password, "INBOX", mail(1))
    account = make_scanner(app, dovecot, login, "wrong-password")

    first = run_scan(account.id)
    assert first.status == "failed"
    assert "log in" in first.message.lower() and "wrong-password" not in first.message
    db.session.refresh(account)
    assert account.login_failures == 1 and account.health == "active" and account.last_error == first.message
    run_scan(account.id)
    db.session.refresh(account)
    assert account.health == "blocked" and "2 failed logins" in account.blocked_reason

    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password)
    db.session.commit()
    fixed = run_scan(account.id)
    assert fixed.status == "done" and fixed.created == 1
    db.session.refresh(account)
    assert (account.login_failures, account.health, account.blocked_reason) == (0, "active", None)


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dead_port_fails_readably_and_is_retryable(app, dovecot, box):
    login, password = box
    account = make_scanner(app, dovecot, login, password, port=_dead_port())
    run = run_scan(account.id)
    assert run.status == "failed" and run.failure_kind in RETRYABLE_KINDS
    assert "refused" in run.message.lower() or "connect" in run.message.lower()
    db.session.refresh(account)
    assert account.login_failures == 0 and account.running_run_id is None


def test_oversized_message_keeps_only_its_header(app, dovecot, box):
    login, password = box
    big = mail(1, body="x" * 20000)
    dovecot.append_many(login, password, "INBOX", [big, mail(2)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")
    app.config["MAX_MESSAGE_BYTES"] = 5000
    try:
        run = run_scan(account.id)
    finally:
        app.config["MAX_MESSAGE_BYTES"] = 25 * 1024 * 1024
    assert run.status == "done" and run.created == 2
    row = db.session.scalars(select(Email).where(Email.uid == 1)).one()
    assert row.size == len(big) and len(row.raw) < 1000 and b"x" * 100 not in row.raw
    assert row.defects


def test_stop_requested_between_batches(app, dovecot, box, admin):
    login, password = box
    settings = MailSettings.get()
    settings.batch_size = 2
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 9)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")

    def stop_after_first_batch(info):
        if info["downloaded"] >= 2:
            scans.request_stop(info["run_id"], admin.id)

    run = run_scan(account.id, progress=stop_after_first_batch)
    assert run.status == "stopped" and run.stopped_by_id == admin.id
    assert run.downloaded == 2 and stored_uids(account.id) == [1, 2]
    rest = run_scan(account.id)
    assert rest.status == "done" and stored_uids(account.id) == list(range(1, 9))


def test_dead_run_is_closed_and_a_live_one_blocks(app, dovecot, box):
    login, password = box
    dovecot.append(login, password, "INBOX", mail(1))
    account = make_scanner(app, dovecot, login, password, actions="create_email")
    # A run whose process is gone (pid far beyond pid_max) still holds the mailbox.
    dead = ScanRun(account_id=account.id, status="running", runner=f"{socket.gethostname()}:99999999",
                   heartbeat_at=utcnow(), started_at=utcnow())
    db.session.add(dead)
    db.session.flush()
    account.running_run_id = dead.id
    db.session.commit()
    run = run_scan(account.id)
    assert run.status == "done" and run.created == 1
    db.session.refresh(dead)
    assert dead.status == "failed" and dead.message == liveness.RUN_DIED

    # A live run (this very process) holds it: nothing is touched.
    live = ScanRun(account_id=account.id, status="running", runner=liveness.runner_id(), heartbeat_at=utcnow(),
                   started_at=utcnow())
    db.session.add(live)
    db.session.flush()
    account.running_run_id = live.id
    db.session.commit()
    count = db.session.scalar(select(func.count(ScanRun.id)))
    with pytest.raises(ScanAlreadyRunning):
        run_scan(account.id)
    assert db.session.scalar(select(func.count(ScanRun.id))) == count


def test_cli_run_prints_one_json_object(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(1), mail(2)])
    account = make_scanner(app, dovecot, login, password)
    result = app.test_cli_runner().invoke(args=["scanners", "run", str(account.id), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    for key in ("status", "downloaded", "created", "bound", "tickets_created", "tickets_reopened", "ignored",
                "errors", "error_details", "duplicates", "also_in", "run_id", "message"):
        assert key in data
    assert (data["status"], data["downloaded"], data["created"]) == ("done", 2, 2)

    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "nope")
    db.session.commit()
    failed = app.test_cli_runner().invoke(args=["scanners", "run", str(account.id)])
    assert failed.exit_code == 1 and "failed" in failed.output


def test_corpus_messages_are_all_accounted_for(app, dovecot, box):
    # A zero-byte message cannot exist on an IMAP server (Dovecot refuses to APPEND it).
    files = sorted(p for p in CORPUS.glob("*.eml") if p.is_file() and p.stat().st_size > 0)
    if not files:
        unavailable(f"no corpus messages in {CORPUS}")
    login, password = box
    uids = dovecot.append_many(login, password, "INBOX", [p.read_bytes() for p in files])
    account = make_scanner(app, dovecot, login, password)

    run = run_scan(account.id)
    assert run.status in ("done", "partial"), run.message
    assert run.downloaded == len(files)
    errors = {d["uid"]: d["reason"] for d in json.loads(run.error_details)}
    assert all(reason for reason in errors.values())
    stored = set(stored_uids(account.id))
    duplicates = run.duplicates
    unaccounted = [(uid, f.name) for uid, f in zip(uids, files, strict=True) if uid not in stored and uid not in errors]
    # Only true duplicates (the very same message twice) may be neither stored nor in error.
    assert len(unaccounted) <= duplicates, unaccounted

    again = run_scan(account.id)
    assert (again.downloaded, again.created) == (0, 0)


def test_connection_dropped_mid_fetch_keeps_what_was_stored(app, dovecot, box, monkeypatch):
    """A connection that breaks after the first chunk: a failed run that keeps the first chunk."""
    login, password = box
    settings = MailSettings.get()
    settings.batch_size = 2
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 7)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")
    from app.scanning import imap_reads

    real = imap_reads.fetch_chunk
    calls = {"n": 0}

    def fetch_then_drop(client, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            client.sock.shutdown(socket.SHUT_RDWR)  # the real socket really closes
        return real(client, *args, **kwargs)

    monkeypatch.setattr(imap_reads, "fetch_chunk", fetch_then_drop)
    run = run_scan(account.id)
    assert run.status == "failed" and "connection" in run.message.lower()
    assert stored_uids(account.id) == [1, 2]
    monkeypatch.setattr(imap_reads, "fetch_chunk", real)
    rest = run_scan(account.id)
    assert rest.status == "done" and stored_uids(account.id) == [1, 2, 3, 4, 5, 6]


def test_two_workers_on_the_same_mailbox_only_one_runs(app, dovecot, box):
    import threading

    login, password = box
    settings = MailSettings.get()
    settings.batch_size = 2
    db.session.commit()
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 5)])
    account = make_scanner(app, dovecot, login, password, actions="create_email")
    outcome = {}

    def second_worker():
        with app.app_context():
            try:
                run_scan(account.id)
                outcome["second"] = "ran"
            except ScanAlreadyRunning as busy:
                outcome["second"] = ("refused", busy.run_id)
            finally:
                db.session.remove()

    def while_running(info):
        if info["downloaded"] and "second" not in outcome:
            t = threading.Thread(target=second_worker)
            t.start()
            t.join(30)

    first = run_scan(account.id, progress=while_running)
    assert first.status == "done" and first.created == 4
    assert outcome["second"] == ("refused", first.id)
    assert db.session.scalar(select(func.count(ScanRun.id))) == 1
