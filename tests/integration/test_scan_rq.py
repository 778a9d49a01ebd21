"""Scan jobs on real RQ workers (``python worker.py`` subprocesses) against real Redis and Dovecot.

The test app and the workers share a file SQLite database prepared here; the
queue lives in its own Redis database number, emptied first, so a worker of
the demo setup never takes these jobs.
"""

from __future__ import annotations

import fcntl
import re
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from app.extensions import db
from app.jobqueue import jobs
from app.models import Email, MailAccount, ScanRun
from app.scanning import liveness
from app.services import scans
from tests.scan_helpers import add_scanner as _scanner
from tests.scan_helpers import kill_worker, shared_app
from tests.scan_helpers import run_burst as _burst
from tests.scan_helpers import start_worker as _worker

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_DB = 13


@pytest.fixture
def env(tmp_path, redis_url, dovecot):
    """An app on a file SQLite database + a private Redis db, and the environment for its workers."""
    # Several test sessions may run on this machine at once (CI, a developer, a helper): they share this
    # Redis database, so they take turns instead of emptying it under each other's workers.
    lock_path = ROOT / ".state" / "test_scan_rq.lock"
    lock_path.parent.mkdir(exist_ok=True)
    lock = open(lock_path, "w")  # held for the whole test
    fcntl.flock(lock, fcntl.LOCK_EX)
    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{REDIS_DB}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    app, worker_env = shared_app(tmp_path, url)
    yield app, worker_env, conn
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    conn.flushdb()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def test_enqueued_scan_runs_on_a_real_worker(env, dovecot):
    app, worker_env, conn = env
    account_id = _scanner(app, dovecot, 12)
    with app.app_context():
        job_id = scans.enqueue_scan(account_id)
        assert job_id == f"scan-{account_id}"
        assert scans.scan_progress(account_id)["state"] == "queued"
    _burst(worker_env)
    job = Job.fetch(job_id, connection=conn)
    assert job.get_status() == JobStatus.FINISHED
    assert job.return_value()["status"] == "done"
    assert job.get_meta()["downloaded"] == 12
    with app.app_context():
        run = db.session.scalars(select(ScanRun)).one()
        assert (run.status, run.created, run.job_id, run.trigger) == ("done", 12, job_id, "manual")
        assert scans.scan_progress(account_id)["state"] == "idle"


def test_same_scanner_is_enqueued_once(env, dovecot):
    app, worker_env, conn = env
    account_id = _scanner(app, dovecot, 3)
    with app.app_context():
        ids = {scans.enqueue_scan(account_id) for _ in range(3)}
        assert ids == {f"scan-{account_id}"}
        assert Queue(jobs.SCAN_QUEUE, connection=conn).count == 1
    _burst(worker_env)
    with app.app_context():
        assert db.session.scalar(select(func.count(ScanRun.id))) == 1
        # Once finished, the same scanner can be enqueued again.
        scans.enqueue_scan(account_id)
        assert Queue(jobs.SCAN_QUEUE, connection=conn).count == 1


def test_connection_errors_are_retried_with_back_off(env, dovecot):
    app, worker_env, conn = env
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    account_id = _scanner(app, dovecot, 1, port=dead_port)
    with app.app_context():
        job_id = scans.enqueue_scan(account_id)
    _burst(worker_env)
    job = Job.fetch(job_id, connection=conn)
    # Failed once, then scheduled again (10 s later) rather than failed for good.
    assert job.get_status() == JobStatus.SCHEDULED
    assert job.retries_left == 2
    with app.app_context():
        run = db.session.scalars(select(ScanRun)).one()
        assert run.status == "failed" and run.message


def test_worker_killed_mid_run_then_restarted_stores_every_message_once(env, dovecot):
    app, worker_env, conn = env
    total = 1000
    account_id = _scanner(app, dovecot, total, batch_size=5)
    with app.app_context():
        scans.enqueue_scan(account_id)
    proc = _worker(worker_env, "--no-schedule")
    try:
        deadline = time.monotonic() + 60
        progress = {}
        with app.app_context():
            while time.monotonic() < deadline:
                progress = scans.scan_progress(account_id)
                db.session.commit()
                if progress["state"] == "running" and progress["downloaded"] >= 20:
                    break
                time.sleep(0.1)
        assert progress.get("state") == "running", progress
    finally:
        # The machine dies: the worker, and the work horse RQ forked into a session of its own.
        kill_worker(proc, app)
    with app.app_context():
        killed = db.session.scalars(select(ScanRun)).one()
        assert killed.status == "running" and 0 < killed.downloaded < total
        # The same job id is enqueued again: the dead worker's job does not block it.
        before = Job.fetch(f"scan-{account_id}", connection=conn).get_status()
        scans.enqueue_scan(account_id)
        assert Queue(jobs.SCAN_QUEUE, connection=conn).count == 1, before
    log = _burst(worker_env)
    with app.app_context():
        runs = db.session.scalars(select(ScanRun).order_by(ScanRun.id)).all()
        assert [r.status for r in runs] == ["failed", "done"], log
        assert runs[0].message == liveness.RUN_DIED
        assert db.session.scalar(select(func.count(Email.id))) == total
        assert db.session.scalar(select(func.count(func.distinct(Email.uid)))) == total
        assert runs[0].created + runs[1].created == total
        account = db.session.get(MailAccount, account_id)
        assert account.running_run_id is None
