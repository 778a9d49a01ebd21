"""Load held: concurrent users on the pages and the mailbox hand-off while a real worker scans.

    .venv/bin/python bench/load.py                       # 50 clients for 60 s (the issue's figure)
    .venv/bin/python bench/load.py --clients 10 --seconds 5 --messages 200   # what the test suite runs

It sets up everything it needs in a temporary folder and stops by itself:

* a file SQLite database with ``--users`` users, a mail server pointing at the private Dovecot, and a
  scanner for a fresh Dovecot mailbox filled with ``--messages`` messages, granted to every user;
* gunicorn serving ``wsgi:app`` on a free loopback port (``--workers`` × ``--threads``);
* ``python worker.py --burst`` (the real RQ worker) on a private Redis database, working off the scan
  of that mailbox while the load runs.

Each client logs in once as its user, then loops until the deadline over: the start page, the e-mail
list, one e-mail's page, Virtual desk → Mailbox, and the hand-off (POST /bridge/open → the page that posts to
Roundcube, not followed). It prints requests, errors, p50/p95 latency per kind and overall, and the
scan's result, and writes them as JSON (``--json``). Exit status 1 when any request failed (a 5xx, a
connection error or an unexpected status) or when the scan did not store every message exactly once.
Only loopback addresses are ever contacted.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from email.message import EmailMessage
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "load-test-password-1"
_CSRF = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {i % 40} <customer{i % 40}@acme.test>"
    msg["To"] = "support@corp.test"
    msg["Subject"] = f"Load message {i}"
    msg["Message-ID"] = f"<load-{i}-{secrets.token_hex(4)}@acme.test>"
    msg.set_content(f"Hello, this is load message {i}.\n" + "Some text. " * 30)
    return msg.as_bytes()


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


class Stats:
    """Latencies and failures per request kind, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def add(self, kind: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latency[kind].append(seconds)
            if error:
                self.errors.append(f"{kind}: {error}")

    def summary(self) -> dict:
        every = [x for values in self.latency.values() for x in values]
        kinds = {kind: {"requests": len(v), "p50_ms": round(statistics.median(v) * 1000, 1),
                        "p95_ms": round(_percentile(v, 0.95) * 1000, 1)} for kind, v in sorted(self.latency.items())}
        return {"requests": len(every), "errors": len(self.errors), "error_samples": self.errors[:20],
                "p50_ms": round(statistics.median(every) * 1000, 1) if every else 0.0,
                "p95_ms": round(_percentile(every, 0.95) * 1000, 1), "by_kind": kinds}


def _client(base: str, username: str, account_id: int, email_id: int, deadline: float, stats: Stats,
            roundcube: str) -> None:
    import requests

    session = requests.Session()

    def call(kind: str, method: str, path: str, expect: tuple[int, ...], **kw):
        started = time.perf_counter()
        try:
            answer = session.request(method, base + path, allow_redirects=False, timeout=30, **kw)
        except requests.RequestException as exc:
            stats.add(kind, time.perf_counter() - started, f"{type(exc).__name__}: {exc}")
            return None
        elapsed = time.perf_counter() - started
        error = None if answer.status_code in expect else f"{method} {path} → {answer.status_code}"
        stats.add(kind, elapsed, error)
        return answer

    page = call("login", "GET", "/login", (200,))
    if page is None:
        return
    token = next(g for g in _CSRF.search(page.text).groups() if g)
    answer = call("login", "POST", "/login", (302,), data={"username": username, "password": PASSWORD,
                                                           "csrf_token": token})
    if answer is None or answer.status_code != 302:
        return
    while time.monotonic() < deadline:
        home = call("start page", "GET", "/", (200,))
        call("e-mail list", "GET", "/records/emails", (200,))
        call("e-mail page", "GET", f"/records/emails/{email_id}", (200,))
        call("desk mailbox", "GET", "/mailbox", (200,))
        if home is not None and home.status_code == 200:
            match = _CSRF.search(home.text)
            token = next(g for g in match.groups() if g) if match else token
            answer = call("hand-off", "POST", f"/bridge/open/{account_id}", (200,), data={"csrf_token": token})
            if answer is not None and answer.status_code == 200 and \
                    (f'action="{roundcube}"' not in answer.text or 'name="_autologin"' not in answer.text):
                stats.add("hand-off", 0.0, "no hand-off form to Roundcube on the page")


def run(args) -> dict:
    """Set up, load, tear down; returns the figures."""
    from sqlalchemy import func, select

    from app import create_app
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import (
        AutologinGrant,
        Email,
        EmailMailbox,
        MailAccount,
        MailServer,
        MailSettings,
        ScanFolder,
        ScanRun,
        User,
    )
    from app.services import scans
    from tests.services import ensure_dovecot, ensure_redis

    tmp = Path(tempfile.mkdtemp(prefix="cm-load-"))
    redis_url = re.sub(r"/\d*$", "", ensure_redis().rstrip("/")) + f"/{args.redis_db}"
    if not re.match(r"redis://(127\.0\.0\.1|localhost)[:/]", redis_url):
        raise SystemExit(f"refusing a non-loopback Redis: {redis_url}")
    roundcube = "http://127.0.0.1:18090/"
    env = {**os.environ, "CM_ENV": "development", "CM_INSTANCE_PATH": str(tmp),
           "DATABASE_URL": f"sqlite:///{tmp / 'load.db'}", "SECRET_KEY": secrets.token_urlsafe(32),
           "MAIL_ENCRYPTION_KEY": "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=",
           "BRIDGE_SECRET": secrets.token_urlsafe(24), "REDIS_URL": redis_url, "QUEUE_MODE": "redis",
           "ROUNDCUBE_URL": roundcube, "LOG_LEVEL": "WARNING", "LOGIN_MAX_FAILURES": "1000",
           # Each client clicks far more often than a person: the per-user minting limit is not what is measured.
           "AUTOLOGIN_MINT_LIMIT": "1000000"}
    app = create_app("development", SQLALCHEMY_DATABASE_URI=env["DATABASE_URL"], SECRET_KEY=env["SECRET_KEY"],
                     MAIL_ENCRYPTION_KEY=env["MAIL_ENCRYPTION_KEY"], BRIDGE_SECRET=env["BRIDGE_SECRET"],
                     REDIS_URL=redis_url, QUEUE_MODE="redis", INSTANCE_PATH=str(tmp), ROUNDCUBE_URL=roundcube)

    import redis

    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()  # a private database number: nothing but this run's queue lives there

    dovecot = ensure_dovecot()
    login, mailbox_pw = dovecot.new_user("load")
    dovecot.append_many(login, mailbox_pw, "INBOX", [_message(i) for i in range(args.messages)])

    with app.app_context():
        db.create_all()
        server = MailServer(name="Load Dovecot", imap_host=dovecot.host, imap_port=dovecot.port,
                            imap_security="none", smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
        account = MailAccount(name="Load mailbox", server=server, login=login, actions="create_email,bind_email",
                              password_enc=encrypt_secret(env["MAIL_ENCRYPTION_KEY"], mailbox_pw),
                              folders=[ScanFolder(name="INBOX", direction="incoming")])
        db.session.add_all([server, account])
        # One run takes the whole mailbox (the default budget of 500 would leave the rest for the next run).
        settings = MailSettings.get()
        settings.max_per_run = max(settings.max_per_run or 0, args.messages)
        users = []
        for i in range(args.users):
            user = User(username=f"load{i}", is_admin=(i == 0), full_name=f"Load {i}")
            user.set_password(PASSWORD)
            user.set_email(f"load{i}@corp.test")
            users.append(user)
        db.session.add_all(users)
        db.session.commit()
        db.session.add_all([AutologinGrant(user_id=u.id, account_id=account.id) for u in users])
        # One e-mail for the e-mail page before the scan begins (the scan adds the rest while the load runs).
        db.session.add(Email(account_id=account.id, folder="Seed", uidvalidity=1, uid=1, message_key="seed",
                             subject="Seed", from_addr="seed@acme.test", direction="received", body_text="seed",
                             body_html="", headers="", raw=b"Subject: Seed\r\n\r\nseed\r\n", size=30,
                             mailboxes=[EmailMailbox(account_id=account.id, message_key="seed", folder="Seed",
                                                     uidvalidity=1, uid=1)]))
        db.session.commit()
        account_id = account.id
        email_id = db.session.scalar(select(Email.id))
        usernames = [u.username for u in users]

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    web = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                            "--workers", str(args.workers), "--threads", str(args.threads), "--timeout", "60",
                            "--log-level", "warning", "wsgi:app"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=open(tmp / "gunicorn.log", "w"))
    worker = None
    try:
        _wait_for(base + "/healthz", web)
        with app.app_context():
            scans.enqueue_scan(account_id, trigger="manual")
        worker = subprocess.Popen([sys.executable, "worker.py", "--burst", "--no-schedule"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(tmp / "worker.log", "w"))
        stats = Stats()
        deadline = time.monotonic() + args.seconds
        threads = [threading.Thread(target=_client, args=(base, usernames[i % len(usernames)], account_id,
                                                          email_id, deadline, stats, roundcube), daemon=True)
                   for i in range(args.clients)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.seconds + 60)
        elapsed = time.monotonic() - started
        try:
            worker.wait(timeout=args.scan_timeout)
        except subprocess.TimeoutExpired:
            pass
        with app.app_context():
            run_row = db.session.scalars(select(ScanRun).order_by(ScanRun.id.desc())).first()
            stored = db.session.scalar(select(func.count(Email.id)).where(Email.folder == "INBOX"))
            distinct = db.session.scalar(select(func.count(func.distinct(Email.uid))).where(Email.folder == "INBOX"))
            scan = {"status": run_row.status if run_row else None, "downloaded": run_row.downloaded if run_row else 0,
                    "created": run_row.created if run_row else 0, "stored": stored, "distinct_uids": distinct,
                    "appended": args.messages, "worker_exit": worker.returncode}
            db.session.remove()
            db.engine.dispose()
        summary = stats.summary()
        summary.update({"clients": args.clients, "seconds": args.seconds, "elapsed_s": round(elapsed, 1),
                        "requests_per_s": round(summary["requests"] / elapsed, 1) if elapsed else 0.0,
                        "gunicorn": f"{args.workers} workers × {args.threads} threads", "scan": scan})
        return summary
    finally:
        for proc in (worker, web):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        conn.flushdb()


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    import requests

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("gunicorn exited before answering")
        try:
            if requests.get(url, timeout=2).status_code in (200, 503):
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit("gunicorn did not answer in time")


def ok(summary: dict) -> bool:
    """No failed request, and the scan stored every appended message exactly once."""
    scan = summary["scan"]
    return (summary["errors"] == 0 and summary["requests"] > 0 and scan["status"] == "done"
            and scan["stored"] == scan["appended"] == scan["distinct_uids"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--messages", type=int, default=2000, help="messages the worker scans during the load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--redis-db", type=int, default=12, help="private Redis database number for the queue")
    parser.add_argument("--scan-timeout", type=float, default=300.0, help="how long to wait for the scan after")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    # Two load runs on one machine would flush each other's Redis database: take turns.
    lock_path = ROOT / ".state" / "bench_load.lock"
    lock_path.parent.mkdir(exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        summary = run(args)
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 0 if ok(summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
