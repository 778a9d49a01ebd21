"""Fault: the database unavailable for a moment in the middle of a scan.

- PostgreSQL: the scan's connections are ended by the server
  (``pg_terminate_backend``, as a restart or a failover does) right after the
  first batch is committed;
- SQLite: another connection holds the write lock longer than the scan's
  busy timeout.

The run fails with a readable reason naming the database, keeps the batches
committed before, and the next run stores the rest: every message once.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import ScanRun
from app.scanning import liveness
from app.scanning.run import run_scan
from tests.scan_helpers import (
    PG_ADMIN_URL,
    add_scanner,
    assert_stored_once,
    database_app,
    server_uids,
)

pytestmark = pytest.mark.integration

TOTAL, BATCH = 300, 50
# The product waits 10 s on a locked SQLite file; the test lowers it so the outage is short.
BUSY_MS = 1500


@pytest.fixture(params=["sqlite", "postgresql"])
def outage_app(request, tmp_path):
    """(app, backend, database URL) on a SQLite file (with a short busy timeout, so a lock is an
    outage of seconds) or a throwaway PostgreSQL database."""
    with database_app(tmp_path, "redis://127.0.0.1:1/0", request.param) as (app, _, url):
        if request.param == "sqlite":
            with app.app_context():
                @event.listens_for(db.engine, "checkout")
                def short_busy_timeout(dbapi_connection, record, proxy):
                    dbapi_connection.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        yield app, request.param, url


def _end_postgres_sessions(url: str) -> int:
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return len(conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                         "WHERE datname = :name AND pid <> pg_backend_pid()"),
                                    {"name": name}).all())
    finally:
        engine.dispose()


def _lock_sqlite(path: str, hold: float) -> threading.Event:
    """Take the write lock of the database file now and give it back after ``hold`` seconds."""
    released = threading.Event()
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("BEGIN IMMEDIATE")

    def release():
        conn.execute("ROLLBACK")
        conn.close()
        released.set()

    threading.Timer(hold, release).start()
    return released


def test_database_outage_mid_scan_fails_readably_then_next_run_completes(outage_app, dovecot):
    app, backend, url = outage_app
    login, password = dovecot.new_user("dbdown")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    outage = {}
    with app.app_context():
        def break_database_after_first_batch(info):
            if info["downloaded"] >= BATCH and not outage:
                if backend == "postgresql":
                    outage["ended"] = _end_postgres_sessions(url)
                else:
                    # Held past one busy timeout (the batch's write fails), released within the next one
                    # (the end of the run is recorded).
                    outage["released"] = _lock_sqlite(url.removeprefix("sqlite:///"), hold=BUSY_MS / 1000 * 1.7)

        started = time.monotonic()
        run = run_scan(account_id, progress=break_database_after_first_batch)
        took = time.monotonic() - started
        message = run.message
        assert outage, "the scan ended before its first batch was reported"
        assert run.status == "failed", run.message
        assert run.message.startswith("The database failed during the scan") and "next run" in run.message
        assert (run.downloaded, run.created) == (BATCH, BATCH)
        if backend == "sqlite":
            assert "locked" in run.message
            assert outage["released"].wait(10)
        else:
            assert outage["ended"] >= 1

        rest = run_scan(account_id)
        assert rest.status == "done", rest.message
        assert (rest.created, rest.duplicates, rest.errors) == (TOTAL - BATCH, 0, 0)
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"database outage ({backend}): {message!r}; failed run took {took:.2f} s; {TOTAL} messages; "
          f"runs {figures['runs']}")


def _refuse_postgres(url: str, refuse: bool) -> None:
    """Let no one (or everyone again) connect to the database, ending the sessions it has."""
    name = url.rsplit("/", 1)[1]
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS {"false" if refuse else "true"}'))
    finally:
        engine.dispose()
    if refuse:
        _end_postgres_sessions(url)


def test_database_outage_outlasting_the_run_frees_the_mailbox_for_the_next_run(outage_app, dovecot):
    """The database is still gone when the run ends, so its end cannot be recorded; the next run in the
    same process (inline queue mode, the web app) must not be refused as "already running" for it."""
    app, backend, url = outage_app
    login, password = dovecot.new_user("dblong")
    account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, login=(login, password))
    outage = {}
    with app.app_context():
        def break_database_after_first_batch(info):
            if info["downloaded"] >= BATCH and not outage:
                if backend == "postgresql":
                    _refuse_postgres(url, True)
                    outage["down"] = True
                else:
                    outage["released"] = _lock_sqlite(url.removeprefix("sqlite:///"), hold=BUSY_MS / 1000 * 4)

        try:
            run = run_scan(account_id, progress=break_database_after_first_batch)
            assert run.status == "running"  # as the database still says: its end was not recorded
        except OperationalError:
            # Still no database at the very end: there is no run row to hand back either.
            assert backend == "postgresql"
        assert outage
        if backend == "sqlite":
            assert outage["released"].wait(20)
        else:
            _refuse_postgres(url, False)
        db.session.rollback()

        rest = run_scan(account_id)
        assert rest.status == "done", rest.message
        assert (rest.created, rest.duplicates) == (TOTAL - BATCH, 0)
        first = db.session.scalars(select(ScanRun).order_by(ScanRun.id)).first()
        assert (first.status, first.message) == ("failed", liveness.RUN_UNRECORDED)
        message = first.message
        db.session.commit()
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"database outage outlasting the run ({backend}): closed by the next run with {message!r}")
