"""Fault: the IMAP connection dropped (or gone silent) in the middle of a FETCH answer.

A loopback proxy between the scanner and the real Dovecot cuts the link after
a few kilobytes of the second batch's body fetch. The run ends failed with a
reason that names the connection, keeps the first batch, and the next run
(proxy healthy) stores the rest: every message once.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.extensions import db
from app.models import Email
from app.scanning.errors import RETRYABLE_KINDS
from app.scanning.run import run_scan
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import add_scanner, assert_stored_once, server_uids

pytestmark = pytest.mark.integration

TOTAL, BATCH = 300, 50


@pytest.fixture
def proxy(dovecot):
    breaker = FetchBreakingProxy((dovecot.host, dovecot.port))
    yield breaker
    breaker.close()


def _stored(account_id) -> list[int]:
    uids = list(db.session.scalars(select(Email.uid).where(Email.account_id == account_id).order_by(Email.uid)))
    db.session.commit()
    return uids


# (which body fetch, after how many bytes of its answer): at once, inside a literal, one byte in.
@pytest.mark.parametrize(("nth", "nbytes"), [(1, 0), (2, 4096), (3, 1)])
def test_connection_cut_mid_fetch_fails_readably_then_next_run_completes(app, dovecot, proxy, nth, nbytes):
    login, password = dovecot.new_user("cut")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
    proxy.arm("cut", nth=nth, nbytes=nbytes)
    started = time.monotonic()
    run = run_scan(account_id)
    assert proxy.triggered.is_set()
    assert run.status == "failed", run.message
    assert "connection" in run.message.lower() and "next run" in run.message.lower()
    assert run.failure_kind in RETRYABLE_KINDS  # the RQ job retries it with back-off
    # The batches before were committed; the half-read one left nothing behind.
    kept = (nth - 1) * BATCH
    assert _stored(account_id) == list(range(1, kept + 1))
    assert run.downloaded == run.created == kept

    proxy.heal()
    rest = run_scan(account_id)
    assert rest.status == "done", rest.message
    assert (rest.downloaded, rest.created, rest.duplicates) == (TOTAL - kept, TOTAL - kept, 0)
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"imap cut: {run.message!r}; {TOTAL} messages, runs {figures['runs']}, {time.monotonic() - started:.2f} s")


# The database plays no part in a timeout: SQLite only, to keep the suite short.
@pytest.mark.parametrize("_session_app", ["sqlite"], indirect=True)
def test_connection_gone_silent_mid_fetch_times_out_readably(app, dovecot, proxy):
    """A link that stops answering (no FIN, no RST) ends the run after the timeout instead of hanging it."""
    login, password = dovecot.new_user("cut")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
    timeout = 2  # the product's default is 10 s; the test does not wait that long
    app.config["MAIL_CONNECT_TIMEOUT"] = timeout
    proxy.arm("stall", nth=3, nbytes=4096)
    run = run_scan(account_id)
    ended = time.monotonic()
    assert proxy.triggered.is_set()
    assert run.status == "failed", run.message
    # The run waited out the silence for the configured timeout, not less (it did time out) and not the
    # product's default of 10 s or forever (the setting reached the connection).
    silence = ended - proxy.triggered_at
    assert timeout - 0.1 <= silence < 10, f"the run ended {silence:.2f} s after the link went silent"
    assert "connection" in run.message.lower() or "answer" in run.message.lower(), run.message
    assert _stored(account_id) == list(range(1, 2 * BATCH + 1))
    proxy.heal()

    rest = run_scan(account_id)
    assert rest.status == "done", rest.message
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"imap silent: {run.message!r}; {TOTAL} messages, failed run ended {silence:.2f} s after the silence, "
          f"runs {figures['runs']}")
