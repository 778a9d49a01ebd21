"""One message's trouble never stops a scan: a message that cannot be read, one that cannot be stored, and one
deleted on the server between the listing and the fetch, each against the real Dovecot.

Each run ends "partial" with exactly that message named by folder, UID and reason, every other message
stored once, and the next run carries on from where this one ended (the bad message is not fetched again).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Email
from app.scanner import parse
from app.scanning.run import run_scan
from app.scanning.store import rows
from tests.scan_helpers import add_scanner, assert_stored_once, server_uids

# The database plays no part in these paths: SQLite only, to keep the suite short.
pytestmark = [pytest.mark.integration, pytest.mark.parametrize("_session_app", ["sqlite"], indirect=True)]

TOTAL, BATCH = 40, 10
BAD_UID = 23  # in the third batch


def _details(run) -> list[dict]:
    return json.loads(run.error_details or "[]")


def _next_run_adds_nothing(app, account_id: int, bad_uid: int) -> None:
    """The folder moved past the bad message: the next run fetches nothing, and it stays the one missing."""
    again = run_scan(account_id)
    assert again.status == "done", again.message
    assert (again.downloaded, again.created, again.errors) == (0, 0, 0)
    with app.app_context():
        stored = set(db.session.scalars(select(Email.uid).where(Email.account_id == account_id)))
    assert stored == set(range(1, TOTAL + 1)) - {bad_uid}


def test_a_message_that_cannot_be_read_is_reported_and_the_rest_is_stored(app, dovecot, monkeypatch):
    login, password = dovecot.new_user("unreadable")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    real = parse.parse_message

    def parse_or_fail(raw):
        if raw.uid == BAD_UID:
            raise ValueError("a header the parser chokes on")
        return real(raw)

    monkeypatch.setattr(parse, "parse_message", parse_or_fail)
    run = run_scan(account_id)
    assert run.status == "partial", run.message
    assert (run.downloaded, run.created, run.errors) == (TOTAL, TOTAL - 1, 1)
    assert _details(run) == [{"folder": "INBOX", "uid": BAD_UID, "reason": "The message could not be read: "
                                                                       "ValueError: a header the parser chokes on"}]
    _next_run_adds_nothing(app, account_id, BAD_UID)


def test_a_message_that_cannot_be_stored_is_reported_and_the_rest_is_stored(app, dovecot, monkeypatch):
    login, password = dovecot.new_user("unstorable")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    real = rows.email_row

    def row_or_fail(account, decision, now):
        if decision.message.item.parsed.raw.uid == BAD_UID:
            raise RuntimeError("this message upsets a storing step")
        return real(account, decision, now)

    monkeypatch.setattr(rows, "email_row", row_or_fail)
    run = run_scan(account_id)
    assert run.status == "partial", run.message
    # Its batch was stored again one message at a time: only the culprit is missing.
    assert (run.downloaded, run.created, run.errors) == (TOTAL, TOTAL - 1, 1)
    assert _details(run) == [{"folder": "INBOX", "uid": BAD_UID, "reason": "The message could not be stored: "
                                                                       "RuntimeError: this message upsets a storing "
                                                                       "step"}]
    _next_run_adds_nothing(app, account_id, BAD_UID)


def test_a_message_deleted_on_the_server_during_the_scan_is_reported(app, dovecot):
    login, password = dovecot.new_user("vanishing")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    deleted = []

    def delete_one_of_the_last_batch(info):
        if info.get("downloaded", 0) >= BATCH and not deleted:
            conn = dovecot.connect(login, password)
            try:
                conn.select("INBOX")
                assert conn.uid("STORE", "35", "+FLAGS", r"(\Deleted)")[0] == "OK"
                assert conn.expunge()[0] == "OK"
            finally:
                conn.logout()
            deleted.append(35)

    run = run_scan(account_id, progress=delete_one_of_the_last_batch)
    assert deleted, "the scan ended before its first batch was reported"
    assert run.status == "partial", run.message
    assert (run.downloaded, run.created, run.errors) == (TOTAL - 1, TOTAL - 1, 1)
    assert _details(run) == [{"folder": "INBOX", "uid": 35,
                              "reason": "The message was deleted on the server before it could be read."}]
    # Every message the server still holds is stored once.
    assert assert_stored_once(app, account_id, server_uids(dovecot, login, password)) == \
        {"stored": TOTAL - 1, "runs": ["partial"]}
