"""Housekeeping after storing, where it can go wrong.

- A server without MOVE and UIDPLUS (a private Dovecot whose ``imap_capability`` leaves them out):
  a move is COPY + STORE \\Deleted + EXPUNGE, and the plain EXPUNGE is sent only when no other
  client's message is marked deleted in the folder.
- A worker SIGKILLed between the commit of the messages and the move (it is paused there through
  ``housekeeping.PAUSE_ENV``): the next run moves them, and every message is stored once and moved once.
"""

from __future__ import annotations

import email
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import MailAccount, PendingMailAction, ScanFolder, ScanRun
from app.scanning import housekeeping, imap_reads, liveness
from app.scanning.run import run_scan
from app.services import scans
from tests.ci import unavailable
from tests.faults.private_dovecot import PrivateDovecot
from tests.integration.test_scan_dovecot import flags, mail, make_scanner, stored_uids
from tests.scan_helpers import (
    add_scanner,
    assert_stored_once,
    count_emails,
    database_app,
    kill_worker,
    run_burst,
    server_uids,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

# Dovecot's capabilities after login, less MOVE and UIDPLUS.
PLAIN_CAPABILITIES = "IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT NAMESPACE UNSELECT"


@pytest.fixture(scope="module")
def plain_dovecot(dovecot):  # the shared one must run: its config is the template
    """A private Dovecot that offers neither MOVE nor UIDPLUS."""
    instance = PrivateDovecot(extra=f"imap_capability = {PLAIN_CAPABILITIES}\n")
    try:
        instance.start()
    except Exception as exc:
        instance.remove()
        unavailable(f"cannot start a private Dovecot: {exc}")
    yield instance
    instance.remove()


def pending() -> int:
    value = db.session.scalar(select(func.count(PendingMailAction.id)))
    db.session.commit()
    return value


def capabilities(handle, login, password) -> set[str]:
    conn = handle.connect(login, password)
    try:
        typ, data = conn.capability()
        return set(data[0].decode().upper().split())
    finally:
        conn.logout()


def message_ids(handle, login, password, folder) -> list[str]:
    """The Message-ID of every message in ``folder``, in UID order."""
    conn = handle.connect(login, password)
    try:
        conn.select(f'"{folder}"', readonly=True)
        typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        return [email.message_from_bytes(item[1])["Message-ID"] for item in data or [] if isinstance(item, tuple)]
    finally:
        conn.logout()


def test_move_without_move_or_uidplus_copies_flags_and_expunges(app, plain_dovecot):
    handle = plain_dovecot.handle
    login, password = handle.new_user("plain")
    caps = capabilities(handle, login, password)
    assert "MOVE" not in caps and "UIDPLUS" not in caps and "IMAP4REV1" in caps
    handle.append_many(login, password, "INBOX", [mail(i) for i in range(1, 6)])
    handle.append_many(login, password, "Done", [mail(99)])
    account = make_scanner(app, handle, login, password, actions="create_email")
    account.after_store, account.after_store_folder = "move", "Done"
    db.session.commit()

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert run.created == 5 and stored_uids(account.id) == [1, 2, 3, 4, 5]
    assert flags(handle, login, password) == {}
    assert sorted(message_ids(handle, login, password, "Done")) == sorted(
        [f"<q{i}@acme.test>" for i in range(1, 6)] + ["<q99@acme.test>"])  # each once
    assert pending() == 0


def test_without_uidplus_another_clients_deleted_message_is_never_expunged(app, plain_dovecot, monkeypatch):
    monkeypatch.setattr(housekeeping, "UIDS_PER_COMMAND", 2)  # several groups of rows in one folder
    handle = plain_dovecot.handle
    login, password = handle.new_user("others")
    # Another client's message, marked deleted by it, before the scanner's first message.
    theirs = handle.append(login, password, "INBOX", mail(50), flags="\\Deleted")
    account = make_scanner(app, handle, login, password, actions="create_email")
    account.after_store = "delete"
    folder = account.folders[0]
    folder.uidvalidity = _uidvalidity(handle, login, password)
    folder.last_uid = theirs  # the scanner starts after it
    db.session.commit()
    ours = handle.append_many(login, password, "INBOX", [mail(i) for i in range(1, 6)])

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert run.created == 5
    left = flags(handle, login, password)
    assert sorted(left) == [theirs, *ours]  # nothing expunged: theirs would have gone too
    assert all("\\Deleted" in f for f in left.values())  # ours are marked deleted, waiting
    assert pending() == 5
    conn = handle.connect(login, password)
    try:
        conn.select('"INBOX"')
        conn.uid("STORE", str(theirs), "-FLAGS.SILENT", "(\\Deleted)")  # the other client changes its mind
    finally:
        conn.logout()
    newer = handle.append_many(login, password, "INBOX", [mail(6), mail(7)])

    again = run_scan(account.id)

    assert again.status == "done", again.message
    assert (again.downloaded, again.created) == (2, 2)  # only the new mail is read
    assert list(flags(handle, login, password)) == [theirs]  # ours expunged (old and new), theirs kept
    assert stored_uids(account.id) == sorted([*ours, *newer])
    assert pending() == 0


def _uidvalidity(handle, login, password) -> int:
    conn = handle.connect(login, password)
    try:
        return imap_reads.folder_status(conn, "INBOX").uidvalidity
    finally:
        conn.logout()


# ------------------------------------------------------------------ SIGKILL between the commit and the move

TOTAL, BATCH = 300, 100


@pytest.fixture(params=["sqlite", "postgresql"])
def stack(request, tmp_path, private_redis):
    with database_app(tmp_path, private_redis.url, request.param) as (app, worker_env, _url):
        yield app, worker_env


def _latest_run(app) -> ScanRun | None:
    with app.app_context():
        run = db.session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(1)).first()
        if run is not None:
            db.session.expunge(run)
        db.session.commit()
        return run


def test_worker_killed_between_the_commit_and_the_move_moves_every_message_once(stack, dovecot, tmp_path):
    app, worker_env = stack
    login, password = dovecot.new_user("killmove")
    conn = dovecot.connect(login, password)
    assert conn.create('"Processed"')[0] == "OK"
    conn.logout()
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    with app.app_context():
        account = db.session.get(MailAccount, account_id)
        account.after_store, account.after_store_folder = "move", "Processed"
        db.session.commit()
        scans.enqueue_scan(account_id)
    marker = tmp_path / "paused"
    proc = start_worker({**worker_env, housekeeping.PAUSE_ENV: str(marker)}, "--no-schedule")
    try:
        wait_until(marker.exists, timeout=90, what="the run to pause after its commits, before the move")
        time.sleep(0.2)  # the pid is written before the wait starts
        horse = int(marker.read_text())
        assert count_emails(app) == TOTAL  # every message is committed ...
        with app.app_context():
            assert pending() == TOTAL  # ... with its move owed
            assert db.session.scalar(select(ScanFolder.last_uid).where(ScanFolder.account_id == account_id)) == TOTAL
            db.session.commit()
        assert len(flags(dovecot, login, password)) == TOTAL and flags(dovecot, login, password, "Processed") == {}
        assert _latest_run(app).status == "running"
        kill_worker(proc, app)
        proc = None
        wait_until(lambda: not liveness.pid_alive(horse), timeout=10, what="the killed run's process to be gone")
    finally:
        if proc is not None:
            kill_worker(proc, app)

    with app.app_context():
        scans.enqueue_scan(account_id)
    log = run_burst(worker_env)

    with app.app_context():
        runs = db.session.execute(select(ScanRun.status, ScanRun.message, ScanRun.downloaded, ScanRun.created)
                                  .order_by(ScanRun.id)).all()
        assert pending() == 0
    assert [r.status for r in runs] == ["failed", "done"], log
    assert runs[0].message == liveness.RUN_DIED
    assert (runs[1].downloaded, runs[1].created) == (0, 0)  # nothing read again
    # Stored once and counted once; the stored e-mails followed their messages to Processed (where MOVE
    # reported their new UIDs), every UID there is stored exactly once.
    processed = server_uids(dovecot, login, password, "Processed")
    assert assert_stored_once(app, account_id, processed, folder="Processed") == {"stored": TOTAL,
                                                                                  "runs": ["failed", "done"]}
    # Moved once: the INBOX is empty and the folder holds each message exactly once.
    assert flags(dovecot, login, password) == {}
    moved = message_ids(dovecot, login, password, "Processed")
    assert len(moved) == TOTAL and len(set(moved)) == TOTAL
    assert set(moved) == {f"<order-{i}@acme.test>" for i in range(1, TOTAL + 1)}
