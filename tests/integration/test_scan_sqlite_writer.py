"""A scan on a SQLite file: batches take the writer's turn, the read-ahead pauses during it, and a
batch that fails while holding the turn neither blocks the scan nor the next writer.

Runs the real scan against the private Dovecot on a SQLite database file (the only database where
the turn is a real lock); several batches, so the read-ahead thread is at work.
"""

from __future__ import annotations

import threading

import pytest

from app.scanner import parse
from app.scanning.run import run_scan
from app.scanning.runtime import WriterTurn
from app.scanning.store import batch
from tests.scan_helpers import add_scanner, assert_stored_once, close_app, server_uids, shared_app

pytestmark = pytest.mark.integration

TOTAL, BATCH = 400, 50


def test_reader_pauses_while_a_batch_holds_the_turn_and_a_failing_batch_lets_go(
        tmp_path, dovecot, monkeypatch):
    app, _env = shared_app(tmp_path, "redis://127.0.0.1:1/0")
    state = {"held": False, "turns": 0, "parsed_while_held": 0, "failed": False}
    lock = threading.Lock()
    take, release, parse_message = WriterTurn.take, WriterTurn.release, parse.parse_message
    store_batch = batch.store_batch

    def counting_take(self):
        first = self._fd is None
        take(self)
        if first and self._fd not in (None, -1):
            with lock:
                state["held"] = True
                state["turns"] += 1

    def counting_release(self):
        with lock:
            state["held"] = False
        release(self)

    def watched_parse(raw):
        with lock:
            if state["held"]:
                state["parsed_while_held"] += 1
        return parse_message(raw)

    def failing_once(ctx, items, counters, before_writes=None):
        # The third batch fails after taking the turn, as a bad row would: the scan must fall back
        # to one message at a time, and the reader (waiting for the turn to end) must go on.
        if state["turns"] == 2 and not state["failed"] and before_writes is not None:
            state["failed"] = True
            before_writes()
            raise ValueError("a row the database refused")
        return store_batch(ctx, items, counters, before_writes)

    monkeypatch.setattr(WriterTurn, "take", counting_take)
    monkeypatch.setattr(WriterTurn, "release", counting_release)
    monkeypatch.setattr(parse, "parse_message", watched_parse)
    monkeypatch.setattr(batch, "store_batch", failing_once)
    try:
        login, password = dovecot.new_user("turns")
        account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
        with app.app_context():
            run = run_scan(account_id, trigger="test")
            assert run.status == "done", run.message
            assert (run.downloaded, run.created) == (TOTAL, TOTAL)
        assert state["failed"] and state["turns"] >= TOTAL // BATCH
        # A message whose parse began just as the turn was taken may overlap it (at most one per
        # turn); without the pause the reader parses a good part of the next batch meanwhile.
        assert state["parsed_while_held"] <= state["turns"]
        assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    finally:
        close_app(app)
