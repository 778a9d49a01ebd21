"""Housekeeping after storing, against the real Dovecot (MOVE and UIDPLUS offered): each action is done
once the messages are committed, only on stored messages, and never makes the scan read or skip mail."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, IgnoreFilter, MailServer, PendingMailAction, ScanFolder
from app.scanning import imap_reads
from app.scanning.run import run_scan
from app.services import scanners
from app.services.scanners import ScannerError
from tests.integration.test_scan_dovecot import flags, mail, make_scanner, stored_uids

pytestmark = pytest.mark.integration


@pytest.fixture
def box(app, dovecot):
    return dovecot.new_user("tidy")


def scanner(app, dovecot, login, password, action, folder=None, **kwargs):
    account = make_scanner(app, dovecot, login, password, actions="create_email,bind_email", **kwargs)
    account.after_store, account.after_store_folder = action, folder
    db.session.commit()
    return account


def pending() -> int:
    value = db.session.scalar(select(func.count(PendingMailAction.id)))
    db.session.commit()
    return value


def test_mark_read_sets_seen_on_every_stored_message(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 6)])
    assert all("\\Seen" not in f for f in flags(dovecot, login, password).values())
    account = scanner(app, dovecot, login, password, "mark_read")

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert run.created == 5 and stored_uids(account.id) == [1, 2, 3, 4, 5]
    assert run.message.endswith(" 5 stored message(s) marked read, moved or deleted as set under After storing.")
    assert all("\\Seen" in f for f in flags(dovecot, login, password).values())
    assert pending() == 0


def test_move_puts_stored_messages_in_the_folder_and_the_next_run_reads_only_new_mail(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(i) for i in range(1, 8)])
    dovecot.append_many(login, password, "Done", [mail(100)])  # the target exists, with mail of its own
    account = scanner(app, dovecot, login, password, "move", "Done")

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert run.created == 7 and pending() == 0
    assert flags(dovecot, login, password) == {}  # INBOX is empty
    assert len(flags(dovecot, login, password, "Done")) == 8
    # The stored e-mails follow their messages (Open in webmail finds them in Done).
    places = db.session.execute(select(Email.message_id, Email.folder, Email.uid).order_by(Email.uid)).all()
    assert {folder for _, folder, _ in places} == {"Done"}
    assert [uid for _, _, uid in places] == [2, 3, 4, 5, 6, 7, 8]  # Done's own message has UID 1
    assert done_uid_of(dovecot, login, password, "q3@acme.test") == 4
    dovecot.append_many(login, password, "INBOX", [mail(8), mail(9)])  # UIDs 8 and 9: after the moved ones

    again = run_scan(account.id)

    assert again.status == "done", again.message
    assert (again.downloaded, again.created, again.duplicates) == (2, 2, 0)
    assert stored_uids(account.id) == [] and stored_uids(account.id, "Done") == list(range(2, 11))
    assert len(flags(dovecot, login, password, "Done")) == 10
    assert db.session.scalar(select(ScanFolder.last_uid).where(ScanFolder.account_id == account.id)) == 9


def done_uid_of(dovecot, login, password, message_id) -> int:
    conn = dovecot.connect(login, password)
    try:
        conn.select('"Done"', readonly=True)
        typ, data = conn.uid("SEARCH", None, "HEADER", "Message-ID", message_id)
        return int(data[0])
    finally:
        conn.logout()


def test_delete_removes_stored_messages_and_keeps_ignored_ones(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(1), mail(2, frm="noreply@spam.test"), mail(3)])
    account = scanner(app, dovecot, login, password, "delete")
    db.session.add(IgnoreFilter(account_id=account.id, field="from", match="equals", value="noreply@spam.test",
                                stops="store", enabled=True))
    db.session.commit()

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert (run.created, run.ignored) == (2, 1)
    assert list(flags(dovecot, login, password)) == [2]  # the ignored message was not stored: it stays
    assert stored_uids(account.id) == [1, 3]
    assert pending() == 0


def test_move_to_a_folder_that_is_gone_keeps_the_messages_and_tries_again(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(1), mail(2)])
    account = scanner(app, dovecot, login, password, "move", "Later")

    run = run_scan(account.id)

    assert run.status == "partial"
    assert "Could not move them to 'Later'" in run.error_details
    assert list(flags(dovecot, login, password)) == [1, 2]  # nothing lost
    assert run.created == 2 and pending() == 2
    dovecot.append_many(login, password, "Later", [mail(50)])  # someone creates the folder

    again = run_scan(account.id)

    assert again.status == "done", again.message
    assert again.downloaded == 0  # the messages were not read again
    assert flags(dovecot, login, password) == {}
    assert len(flags(dovecot, login, password, "Later")) == 3
    assert db.session.scalar(select(func.count(Email.id))) == 2 and pending() == 0


def test_changing_the_setting_drops_what_the_old_one_still_owed(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(1)])
    account = scanner(app, dovecot, login, password, "move", "Missing")
    assert run_scan(account.id).status == "partial" and pending() == 1
    account.after_store, account.after_store_folder = "keep", None
    db.session.commit()

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert pending() == 0
    assert list(flags(dovecot, login, password)) == [1]  # left as it is


# ------------------------------------------------------------------ the move target, checked when saved


def test_a_move_target_must_exist_on_the_server_when_the_scanner_is_saved(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "Done", [mail(1)])
    server = MailServer(name="dv-tidy", imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                        smtp_host=dovecot.host, smtp_port=10025, smtp_security="none")
    db.session.add(server)
    db.session.commit()
    fields = {"folders": [("INBOX", "incoming")], "actions": "create_email", "search_fields": "contacts"}

    with pytest.raises(ScannerError) as err:
        scanners.create_scanner("Tidy", server.id, login, password, after_store="move",
                                after_store_folder="Archive", **fields)
    problem = err.value.errors["after_store_folder"]
    assert problem.startswith("The server has no folder 'Archive': create it in the mailbox first")
    assert "INBOX, Done" in problem
    account = scanners.create_scanner("Tidy", server.id, login, password, after_store="move",
                                      after_store_folder="Done", **fields)
    assert (account.after_store, account.after_store_folder) == ("move", "Done")

    # Editing without the password: the stored one is used to read the folders.
    with pytest.raises(ScannerError) as err:
        scanners.update_scanner(account.id, name="Tidy", server_id=server.id, login=login, after_store="move",
                                after_store_folder="Gone", **fields)
    assert "The server has no folder 'Gone'" in err.value.errors["after_store_folder"]
    db.session.rollback()
    db.session.refresh(account)
    assert account.after_store_folder == "Done"

    # An unreachable server: the move cannot be checked, and says so.
    server.imap_port = 1
    db.session.commit()
    with pytest.raises(ScannerError) as err:
        scanners.update_scanner(account.id, name="Tidy", server_id=server.id, login=login, after_store="move",
                                after_store_folder="Elsewhere", **fields)
    assert err.value.errors["after_store_folder"].startswith("Could not check that the folder 'Elsewhere' exists")


def test_actions_owed_in_a_renumbered_folder_are_dropped_and_touch_nothing(app, dovecot, box):
    login, password = box
    dovecot.append_many(login, password, "INBOX", [mail(1), mail(2)])
    account = scanner(app, dovecot, login, password, "delete")
    conn = dovecot.connect(login, password)
    try:
        current = imap_reads.folder_status(conn, "INBOX").uidvalidity
    finally:
        conn.logout()
    folder = account.folders[0]
    folder.uidvalidity, folder.last_uid = current, 2  # read already: nothing new
    # Owed from before the folder was renumbered: UIDs 1 and 2 now name other messages.
    db.session.add_all([PendingMailAction(account_id=account.id, folder="INBOX", uidvalidity=current - 1, uid=uid,
                                          action="delete") for uid in (1, 2)])
    db.session.commit()

    run = run_scan(account.id)

    assert run.status == "done", run.message
    assert pending() == 0
    assert list(flags(dovecot, login, password)) == [1, 2]  # untouched
