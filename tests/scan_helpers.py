"""Helpers shared by the scan tests that run real workers and real services.

Used by ``tests/integration/test_scan_rq.py`` and the fault tests in ``tests/faults/``:
an app on a database file (or a throwaway PostgreSQL database) that worker
subprocesses can share, ``python worker.py`` subprocesses, scanners on Dovecot
mailboxes, and the final check every fault test ends with: each message the
server holds is stored exactly once.
"""

from __future__ import annotations

import imaplib
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from app import create_app
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import Email, EmailMailbox, MailAccount, MailServer, MailSettings, ScanFolder, ScanRun
from tests.ci import unavailable
from tests.conftest import PG_ADMIN_URL, create_postgres_database, drop_postgres_database

ROOT = Path(__file__).resolve().parents[1]
KEY = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="


def order_mail(i: int) -> bytes:
    """A small, distinct message (its own Message-ID) numbered ``i``."""
    return (f"From: customer{i % 7}@acme.test\r\nTo: support@corp.test\r\nSubject: Order {i}\r\n"
            f"Message-ID: <order-{i}@acme.test>\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n\r\n"
            f"Order number {i}, please confirm.\r\n").encode()


# --------------------------------------------------------------------------- databases


@contextmanager
def database_app(tmp_path: Path, redis_url: str, backend: str):
    """``(app, worker_env, database URL)`` from :func:`shared_app` on a SQLite file, or for
    ``backend="postgresql"`` on a throwaway database (skipped when no server answers; a failure under CI);
    closed, and the database dropped, afterwards."""
    url = None
    if backend == "postgresql":
        try:
            url = create_postgres_database("cm_fault")
        except Exception:  # any failure means "no PostgreSQL here"
            unavailable(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    app, worker_env = shared_app(tmp_path, redis_url, url)
    try:
        yield app, worker_env, url or app.config["SQLALCHEMY_DATABASE_URI"]
    finally:
        close_app(app)
        if url:
            drop_postgres_database(url)


def shared_app(tmp_path: Path, redis_url: str, db_url: str | None = None):
    """An app (QUEUE_MODE "redis") on a database that worker subprocesses can share, and their environment.

    ``db_url`` defaults to a SQLite file in ``tmp_path`` (in WAL mode, so the
    test reads progress while a worker writes). Returns ``(app, worker_env)``.
    """
    db_url = db_url or f"sqlite:///{tmp_path / 'scan.db'}"
    instance = str(tmp_path / "instance")
    settings = {"SQLALCHEMY_DATABASE_URI": db_url, "REDIS_URL": redis_url, "QUEUE_MODE": "redis",
                "INSTANCE_PATH": instance, "SECRET_KEY": "rq-test", "MAIL_ENCRYPTION_KEY": KEY,
                "BRIDGE_SECRET": "rq-test-bridge"}
    app = create_app("development", **settings)
    with app.app_context():
        db.create_all()
        if db.engine.dialect.name == "sqlite":
            with db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    worker_env = {**os.environ, "CM_ENV": "development", "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                  "QUEUE_MODE": "redis", "CM_INSTANCE_PATH": instance, "SECRET_KEY": "rq-test",
                  "MAIL_ENCRYPTION_KEY": KEY, "BRIDGE_SECRET": "rq-test-bridge", "PYTHONUNBUFFERED": "1",
                  # One run per scan, however slow the machine: the tests of the time budget set their own.
                  "SCAN_RUN_SECONDS": "0"}
    return app, worker_env


def close_app(app) -> None:
    """Release the app's database connections (before its database is dropped)."""
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# --------------------------------------------------------------------------- scanners


def add_scanner(app, dovecot, count: int, *, batch_size: int = 200, port: int | None = None,
                login: tuple[str, str] | None = None, name: str = "Orders", first: int = 1) -> int:
    """A scanner (create_email, bind_email) on a new Dovecot mailbox holding ``count`` messages; its id.

    The messages are ``order_mail(first)`` onwards: scanners that should each store their own mail
    need ranges of their own (a message two mailboxes hold is stored once, and linked to both).

    ``port`` points the scanner at something else than Dovecot itself (a dead
    port, a proxy); ``login`` reuses an existing (login, password).
    """
    user, password = login or dovecot.new_user("rq")
    for start in range(first, first + count, 500):
        dovecot.append_many(user, password, "INBOX",
                            [order_mail(i) for i in range(start, min(first + count, start + 500))])
    with app.app_context():
        settings = MailSettings.get()
        settings.batch_size, settings.max_per_run = batch_size, 100_000
        server = MailServer(name=f"dv-{user}", imap_host=dovecot.host, imap_port=port or dovecot.port,
                            imap_security="none", smtp_host=dovecot.host, smtp_port=10025, smtp_security="none")
        account = MailAccount(name=name, server=server, login=user, password_enc=encrypt_secret(KEY, password),
                              actions="create_email,bind_email", folders=[ScanFolder(name="INBOX")])
        db.session.add_all([server, account])
        db.session.commit()
        return account.id


def server_uids(dovecot, login: str, password: str, folder: str = "INBOX") -> list[int]:
    """The UIDs the server holds in ``folder``, ascending (asked over IMAP, read-only)."""
    conn = dovecot.connect(login, password)
    try:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        assert typ == "OK"
        typ, data = conn.uid("SEARCH", None, "ALL")
        assert typ == "OK"
        return sorted(int(u) for u in (data[0] or b"").split())
    finally:
        conn.logout()


def assert_stored_once(app, account_id: int, server: list[int], folder: str = "INBOX") -> dict:
    """Every UID the server holds is stored exactly once for this mailbox, by UID and by message key
    (stored from it, or linked to it when another mailbox stored the same message first); returns the
    figures."""
    with app.app_context():
        rows = db.session.execute(select(EmailMailbox.uid, EmailMailbox.message_key)
                                  .where(EmailMailbox.account_id == account_id, EmailMailbox.folder == folder)).all()
        runs = db.session.execute(select(ScanRun.status, ScanRun.created + ScanRun.also_in)
                                  .where(ScanRun.account_id == account_id).order_by(ScanRun.id)).all()
        running = db.session.scalar(select(MailAccount.running_run_id).where(MailAccount.id == account_id))
        db.session.commit()
    uids = sorted(uid for uid, _ in rows)
    keys = {key for _, key in rows}
    assert len(rows) == len(server), f"{len(rows)} stored for {len(server)} on the server"
    assert uids == sorted(server), "stored UIDs differ from the server's (a gap or a double)"
    assert len(keys) == len(rows), "the same message key is stored twice"
    # The runs' own counters agree with what is stored: nothing counted twice, nothing lost.
    assert sum(created for _, created in runs) == len(rows), runs
    assert running is None, "the mailbox is still held by a run"
    return {"stored": len(rows), "runs": [status for status, _ in runs]}


def count_emails(app, account_id: int | None = None) -> int:
    """Stored e-mails (all, or those that reached one scanner's mailbox)."""
    with app.app_context():
        query = select(func.count(Email.id))
        if account_id is not None:
            query = select(func.count(EmailMailbox.id)).where(EmailMailbox.account_id == account_id)
        value = db.session.scalar(query)
        db.session.commit()
        return value


def wait_until(predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- workers


def start_worker(worker_env: dict, *args: str, **kwargs) -> subprocess.Popen:
    """``python worker.py ARGS`` in a session of its own (so a kill can take it and its work horse)."""
    # Own session: killing the process group takes the worker and the job's work horse together,
    # as a machine crash or an OOM kill of the container would.
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py"), *args], cwd=ROOT, env=worker_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)


def run_burst(worker_env: dict, timeout: float = 180) -> str:
    """Run ``worker.py --burst`` to the end; returns its output (asserting it exited cleanly)."""
    proc = start_worker(worker_env, "--burst")
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def kill_worker(proc: subprocess.Popen, app) -> None:
    """SIGKILL the worker's process group and the work horse of the latest run (it has a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    with app.app_context():
        runner = db.session.scalar(select(ScanRun.runner).order_by(ScanRun.id.desc()).limit(1))
        db.session.commit()
    if runner:
        try:
            os.kill(int(runner.rpartition(":")[2]), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    proc.wait(timeout=10)


def imap_alive(host: str, port: int) -> bool:
    """True when an IMAP server greets on host:port."""
    try:
        imaplib.IMAP4(host, port, timeout=2).shutdown()
        return True
    except OSError:
        return False
