"""Scan jobs on real RQ workers (``python worker.py`` subprocesses) against real Redis and Dovecot.

The test app and the workers share a file SQLite database prepared here; the
queue lives in its own Redis database number, emptied first, so a worker of
the demo setup never takes these jobs.
"""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import func, select

from app import create_app
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import Email, MailAccount, MailServer, MailSettings, ScanFolder, ScanRun
from app.services import scans
from app.tasks import queues

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="
REDIS_DB = 13


def _mail(i: int) -> bytes:
    return (f"From: customer{i % 7}@acme.test\r\nTo: support@corp.test\r\nSubject: Order {i}\r\n"
            f"Message-ID: <order-{i}@acme.test>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n"
            f"Order number {i}, please confirm.\r\n").encode()


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
    db_url = f"sqlite:///{tmp_path / 'scan.db'}"
    settings = {"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": url, "QUEUE_MODE": "redis",
                "INSTANCE_PATH": str(tmp_path / "instance"), "SECRET_KEY": "rq-test", "MAIL_ENCRYPTION_KEY": KEY,
                "BRIDGE_SECRET": "rq-test-bridge"}
    app = create_app("development", **settings)
    with app.app_context():
        db.create_all()
        # WAL (kept in the file) lets the test read progress while the worker writes.
        with db.engine.connect() as conn_:
            conn_.exec_driver_sql("PRAGMA journal_mode=WAL")
    worker_env = {**os.environ, "CM_ENV": "development", "DATABASE_URL": db_url, "REDIS_URL": url,
                  "QUEUE_MODE": "redis", "CM_INSTANCE_PATH": settings["INSTANCE_PATH"], "SECRET_KEY": "rq-test",
                  "MAIL_ENCRYPTION_KEY": KEY, "BRIDGE_SECRET": "rq-test-bridge", "PYTHONUNBUFFERED": "1"}
    yield app, worker_env, conn
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    conn.flushdb()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def _scanner(app, dovecot, count: int, *, batch_size: int = 200, port: int | None = None) -> int:
    login, password = dovecot.new_user("rq")
    for start in range(0, count, 500):
        dovecot.append_many(login, password, "INBOX", [_mail(i) for i in range(start + 1, min(count, start + 500) + 1)])
    with app.app_context():
        settings = MailSettings.get()
        settings.batch_size, settings.max_per_run = batch_size, 100_000
        server = MailServer(name=f"dv-{login}", imap_host=dovecot.host, imap_port=port or dovecot.port,
                            imap_security="none", smtp_host=dovecot.host, smtp_port=10025, smtp_security="none")
        account = MailAccount(name="Orders", server=server, login=login, password_enc=encrypt_secret(KEY, password),
                              actions="create_email,bind_email", folders=[ScanFolder(name="INBOX")])
        db.session.add_all([server, account])
        db.session.commit()
        return account.id


def _worker(worker_env, *args, **kwargs) -> subprocess.Popen:
    # Own session: killing the process group takes the worker and the job's work horse together,
    # as a machine crash or an OOM kill of the container would.
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args], cwd=ROOT, env=worker_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def _burst(worker_env, timeout=180) -> str:
    proc = _worker(worker_env, "--burst")
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


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
        assert Queue(queues.SCAN_QUEUE, connection=conn).count == 1
    _burst(worker_env)
    with app.app_context():
        assert db.session.scalar(select(func.count(ScanRun.id))) == 1
        # Once finished, the same scanner can be enqueued again.
        scans.enqueue_scan(account_id)
        assert Queue(queues.SCAN_QUEUE, connection=conn).count == 1


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
        os.killpg(proc.pid, signal.SIGKILL)
        with app.app_context():
            runner = db.session.scalar(select(ScanRun.runner).order_by(ScanRun.id.desc()).limit(1))
            db.session.commit()
        if runner:
            try:
                os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
    with app.app_context():
        killed = db.session.scalars(select(ScanRun)).one()
        assert killed.status == "running" and 0 < killed.downloaded < total
        # The same job id is enqueued again: the dead worker's job does not block it.
        before = Job.fetch(f"scan-{account_id}", connection=conn).get_status()
        scans.enqueue_scan(account_id)
        assert Queue(queues.SCAN_QUEUE, connection=conn).count == 1, before
    log = _burst(worker_env)
    with app.app_context():
        runs = db.session.scalars(select(ScanRun).order_by(ScanRun.id)).all()
        assert [r.status for r in runs] == ["failed", "done"], log
        assert runs[0].message == scans.RUN_DIED
        assert db.session.scalar(select(func.count(Email.id))) == total
        assert db.session.scalar(select(func.count(func.distinct(Email.uid)))) == total
        assert runs[0].created + runs[1].created == total
        account = db.session.get(MailAccount, account_id)
        assert account.running_run_id is None
