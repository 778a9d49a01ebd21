"""Fault: the worker killed with SIGKILL in the middle of a batch, then restarted.

``tests/integration/test_scan_rq.py::test_worker_killed_mid_run_then_restarted_stores_every_message_once``
kills a worker somewhere in a run of small batches. Here the kill lands at a
known point inside a batch, after the first batch was committed:

- *mid-fetch* (SQLite): a loopback proxy holds the second batch's FETCH
  answer half-way, so the worker dies holding half a batch in memory;
- *mid-transaction* (PostgreSQL): the second batch's rows are inserted and the
  worker waits on a row lock the test holds on its folder, so it dies with the
  batch written but not committed (the server must roll it back).

Then the job is enqueued again and a new worker runs it: the dead run is closed
as failed, and every message ends stored exactly once. A third test kills only
the job's work horse: the worker lives on and RQ's retry finishes the scan.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import create_engine, select, text

from app.extensions import db
from app.models import ScanRun
from app.scanning import liveness
from app.services import scans
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    add_scanner,
    assert_stored_once,
    count_emails,
    database_app,
    kill_worker,
    run_burst,
    server_uids,
    shared_app,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL, BATCH = 1000, 200


@pytest.fixture(params=["mid-fetch", "mid-transaction"])
def where(request, tmp_path, private_redis):
    """(where the kill lands, app, worker environment, database URL): mid-fetch on a SQLite file,
    mid-transaction on PostgreSQL."""
    backend = "postgresql" if request.param == "mid-transaction" else "sqlite"
    with database_app(tmp_path, private_redis.url, backend) as (app, worker_env, url):
        yield request.param, app, worker_env, url


def _run(app) -> ScanRun | None:
    with app.app_context():
        run = db.session.scalars(select(ScanRun).order_by(ScanRun.id.desc()).limit(1)).first()
        if run is not None:
            db.session.expunge(run)
        db.session.commit()
        return run


def test_worker_killed_in_the_middle_of_a_batch_then_restarted(where, dovecot):
    kind, app, worker_env, url = where
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    lock = None
    proc = None
    try:
        login, password = dovecot.new_user("killed")
        account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
        proxy.arm("stall", nth=2, nbytes=20_000)  # the second batch is ~50 KB
        with app.app_context():
            scans.enqueue_scan(account_id)
        started = time.monotonic()
        proc = start_worker(worker_env, "--no-schedule")
        assert proxy.triggered.wait(60), "the scan did not reach its second batch"
        # The second batch is read ahead while the first is stored: wait for the first one's commit.
        # Then the first batch is committed and the second is half-read.
        wait_until(lambda: _run(app).downloaded == BATCH, timeout=30, what="the first batch's commit")
        assert _run(app).status == "running"
        assert count_emails(app) == BATCH

        if kind == "mid-transaction":
            # Hold the folder row, then let the batch in: the worker inserts its rows and waits on the lock.
            engine = create_engine(url)
            lock = engine.connect()
            lock.execute(text("SELECT id FROM scan_folders WHERE account_id = :a FOR UPDATE"), {"a": account_id})
            proxy.heal()
            wait_until(lambda: lock.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")).scalar(), timeout=30,
                what="the worker to wait on the folder lock")
            assert count_emails(app) == BATCH  # the second batch is written but not committed

        kill_worker(proc, app)
        proc = None
        if lock is not None:
            lock.rollback()
            lock.close()
            engine.dispose()
            lock = None
        proxy.heal()
        killed = _run(app)
        assert killed.status == "running" and killed.downloaded == BATCH
        assert count_emails(app) == BATCH  # nothing of the dead batch survived

        with app.app_context():
            scans.enqueue_scan(account_id)  # the dead worker's job does not block the new one
        log = run_burst(worker_env)
        took = time.monotonic() - started
    finally:
        proxy.close()
        if proc is not None:
            kill_worker(proc, app)
        if lock is not None:
            lock.close()
    with app.app_context():
        runs = db.session.execute(select(ScanRun.status, ScanRun.message, ScanRun.created)
                                  .order_by(ScanRun.id)).all()
        db.session.commit()
    assert [r.status for r in runs] == ["failed", "done"], log
    assert runs[0].message == liveness.RUN_DIED
    assert [r.created for r in runs] == [BATCH, TOTAL - BATCH]
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"worker killed {kind}: {TOTAL} messages in batches of {BATCH}, runs {figures['runs']}, "
          f"{took:.2f} s")


def test_work_horse_killed_mid_batch_the_job_retries_by_itself(tmp_path, dovecot, private_redis):
    """Only the job's process is killed (as the OOM killer picks the biggest process): the worker lives on,
    RQ schedules the job's retry (10 s back-off) and the retry closes the dead run and finishes the scan,
    with nobody enqueueing anything."""
    app, worker_env = shared_app(tmp_path, private_redis.url)
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    proc = None
    try:
        login, password = dovecot.new_user("horse")
        account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
        proxy.arm("stall", nth=2, nbytes=20_000)
        with app.app_context():
            scans.enqueue_scan(account_id)
        proc = start_worker(worker_env, "--no-schedule")
        assert proxy.triggered.wait(60), "the scan did not reach its second batch"
        wait_until(lambda: _run(app).downloaded == BATCH, timeout=30, what="the first batch's commit")
        horse = _run(app)
        assert horse.status == "running"
        os.kill(int(horse.runner.rpartition(":")[2]), signal.SIGKILL)
        killed_at = time.monotonic()
        proxy.heal()

        def statuses():
            with app.app_context():
                value = db.session.scalars(select(ScanRun.status).order_by(ScanRun.id)).all()
                db.session.commit()
                return value

        wait_until(lambda: statuses() == ["failed", "done"], timeout=60, what="the retried scan to finish")
        took = time.monotonic() - killed_at
        assert proc.poll() is None  # the worker itself never stopped
    finally:
        proxy.close()
        if proc is not None:
            kill_worker(proc, app)
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["failed", "done"]}
    print(f"work horse killed mid-fetch: retried by RQ and done {took:.2f} s later; {TOTAL} messages stored once")
