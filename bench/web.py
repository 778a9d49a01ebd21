"""Web load run: the mailbox hand-off under 50 concurrent users, the two big list pages and the start page.

    .venv/bin/python -m bench.web [--users 50] [--seconds 30] [--rows 100000] [--scanners 1000]
                                  [--db sqlite|postgresql|both] [--pages-only]

For each database: creates a throwaway database (a SQLite file, and a
PostgreSQL one when a server answers), seeds it (users with a grant on one
mailbox; ``--scanners`` scanners in all, in every state the board knows, a
few with open alerts; 100,000 scan runs and 100,000 e-mails by bulk inserts,
the e-mails spread over every scanner and over the last 24 hours, which is
the start page board's worst case), starts
gunicorn on a free loopback port the way scripts/run.sh does (2 workers x 4
threads), then:

- hand-off: ``--users`` logged-in users, each on its own keep-alive
  connection, POST /bridge/open/<id> in a loop for ``--seconds`` (the page's
  post to Roundcube is not sent); reports requests/s, errors, p50/p95/p99. Run
  twice: users clicking about once every ``--think`` seconds (latency as
  people see it), then a closed loop without pauses (the server's capacity:
  there latency is simply users / throughput);
- pages: the download history (/admin/history) and the e-mail list
  (/records/emails), 50 requests each for page 1 and for a deep page;
  the start page (/) as a user (mailboxes, tickets, mail: the baseline) and
  as an administrator (the same plus the board of every scanner); reports
  p50/p95 per page. ``--pages-only`` leaves the hand-off out.

The client is a small asyncio HTTP/1.1 client (one coroutine per user), so it
costs the shared CPUs little next to the server. Results go to
bench/results/web.json; the databases are removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import requests

from bench.run import Databases, load, postgres_reachable

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PASSWORD = "bench-web-pw-1"
BENCH_KEY = "dGhpcy1pcy1hLWJlbmNoLWtleS0zMi1ieXRlcy0hISE="
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed_scanners(server_id: int, count: int, now) -> list[int]:
    """``count`` more scanners, in every state of the start page's board, a few with an open alert; their ids."""
    from sqlalchemy import insert, select

    from app.extensions import db
    from app.models import Alert, MailAccount

    rows = []
    for i in range(count):
        rows.append({
            "name": f"Scanner {i:04d}", "server_id": server_id, "login": f"box{i}@corp.test",
            "enabled": i % 97 != 0, "health": "blocked" if i % 89 == 0 else "active",
            "blocked_reason": "Blocked after 3 failed logins." if i % 89 == 0 else None,
            "last_run_status": "failed" if i % 53 == 0 else "done", "last_run_at": now,
            "last_error": "The server refused the login: Authentication failed." if i % 53 == 0 else None,
            # Most succeeded minutes ago; every 41st not for five hours ("behind").
            "last_success_at": now - timedelta(hours=5 if i % 41 == 0 else 0, minutes=i % 15),
            "created_at": now - timedelta(days=30)})
    db.session.execute(insert(MailAccount), rows)
    ids = list(db.session.scalars(select(MailAccount.id).where(MailAccount.name.like("Scanner %"))
                                  .order_by(MailAccount.id)))
    db.session.execute(insert(Alert), [
        {"kind": "no_success", "account_id": account_id, "opened_at": now,
         "message": f"Scanner {account_id} has had no successful run for five hours."}
        for n, account_id in enumerate(ids) if n % 41 == 0])
    db.session.commit()
    return ids


def seed(url: str, users: int, rows: int, scanners: int = 1000) -> int:
    """Admin + ``users`` users granted one mailbox; ``scanners`` scanners; ``rows`` scan runs and e-mails.

    Returns the id of the mailbox the users may open.
    """
    from sqlalchemy import insert, text

    from app import create_app
    from app.extensions import db
    from app.models import (
        AutologinGrant,
        Email,
        MailAccount,
        MailServer,
        MailSettings,
        ScannerActivity,
        ScanRun,
        User,
    )
    from app.models.base import utcnow
    from app.models.runs import hour_number

    app = create_app("testing", SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        db.drop_all()
        db.create_all()
        admin = User(username="admin", is_admin=True)
        admin.set_password(PASSWORD)
        # One hash for all: hashing is deliberately slow and not what is measured.
        people = [User(username=f"user{i}", password_hash=admin.password_hash) for i in range(users)]
        db.session.add_all([admin, *people])
        db.session.flush()
        server = MailServer(name="web", imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                            smtp_host="127.0.0.1", smtp_port=25, smtp_security="none")
        db.session.add(server)
        db.session.flush()
        account = MailAccount(name="Sales", server_id=server.id, login="sales@corp.test")
        db.session.add(account)
        db.session.flush()
        db.session.add_all([AutologinGrant(account_id=account.id, user_id=u.id) for u in [admin, *people]])
        MailSettings.get()
        db.session.commit()
        now = utcnow()
        account.last_success_at = now
        boxes = [account.id, *seed_scanners(server.id, max(0, scanners - 1), now)]
        for start in range(0, rows, 10_000):
            n = range(start, min(rows, start + 10_000))
            db.session.execute(insert(ScanRun), [
                {"account_id": account.id, "started_at": now - timedelta(minutes=5 * i),
                 "finished_at": now - timedelta(minutes=5 * i - 1), "status": "done", "trigger": "schedule",
                 "downloaded": i % 40, "created": i % 40, "error_details": "[]"} for i in n])
            db.session.execute(insert(Email), [
                {"account_id": boxes[i % len(boxes)], "folder": "INBOX", "uidvalidity": 1, "uid": i + 1,
                 "created_at": now - timedelta(seconds=86_000 * i // rows),
                 "message_key": f"<web-{i}@corp.test>", "message_id": f"web-{i}@corp.test",
                 "subject": f"Question about order #{i}", "from_addr": f"customer{i % 5000}@client.test",
                 "from_name": f"Customer {i % 5000}", "to_addrs": "sales@corp.test",
                 "date": now - timedelta(minutes=i), "direction": "received", "body_text": "Hello " * 40,
                 "raw": b"x" * 200, "size": 200} for i in n])
            db.session.commit()
        # Each e-mail reached its mailbox, as a scan records it (who may see it follows that link).
        db.session.execute(text("INSERT INTO email_mailboxes (email_id, account_id, message_key, folder, "
                                "uidvalidity, uid, first_seen_at) SELECT id, account_id, message_key, folder, "
                                "uidvalidity, uid, created_at FROM emails"))
        # What the scans would have counted as they stored these e-mails: the board reads these counts.
        counts: dict[tuple[int, int], int] = {}
        for i in range(rows):
            key = (hour_number(now - timedelta(seconds=86_000 * i // rows)), boxes[i % len(boxes)])
            counts[key] = counts.get(key, 0) + 1
        db.session.execute(insert(ScannerActivity), [
            {"hour": hour, "account_id": box, "messages": n} for (hour, box), n in counts.items()])
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            # Autovacuum would have analyzed tables this size within a minute in real use; without
            # statistics the planner sorts the whole table for a deep page instead of walking an index.
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("ANALYZE")
        return account.id


def start_gunicorn(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "CM_ENV": "development", "DATABASE_URL": url, "QUEUE_MODE": "inline",
           "SECRET_KEY": "bench-web-secret", "LOG_LEVEL": "WARNING",
           # Users here click in a closed loop: the per-user minting limit is not what is measured.
           "AUTOLOGIN_MINT_LIMIT": "1000000",
           "MAIL_ENCRYPTION_KEY": os.environ.get("MAIL_ENCRYPTION_KEY") or BENCH_KEY}
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                             "--workers", "2", "--threads", "4", "--timeout", "60", "wsgi:app"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200:
                return proc
        except requests.RequestException:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit(f"gunicorn did not start: {proc.stderr.read().decode()[-2000:]}")


def login(base: str, username: str) -> tuple[str, str]:
    """Log in with a real form post; returns (Cookie header, CSRF token for later posts)."""
    s = requests.Session()
    page = s.get(f"{base}/login")
    token = _CSRF.search(page.text).group(1)
    r = s.post(f"{base}/login", data={"username": username, "password": PASSWORD, "csrf_token": token},
               allow_redirects=False)
    if r.status_code != 302:
        raise SystemExit(f"login of {username} failed: {r.status_code}")
    mailbox = s.get(f"{base}/mailbox")
    csrf = _CSRF.search(mailbox.text).group(1)
    return "; ".join(f"{c.name}={c.value}" for c in s.cookies), csrf


class Conn:
    """One keep-alive HTTP/1.1 connection; ``request`` returns (status, seconds)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def request(self, raw: bytes) -> tuple[int, float]:
        started = time.perf_counter()
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if length:
            await self.reader.readexactly(int(length.group(1)))
        if re.search(rb"(?i)\r\nconnection:\s*close", head) or not length:
            self.writer.close()
            self.reader = self.writer = None
        return status, time.perf_counter() - started


def _request(method: str, path: str, cookie: str, body: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", f"Cookie: {cookie}", "Connection: keep-alive"]
    if method == "POST":
        lines += ["Content-Type: application/x-www-form-urlencoded", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p))] * 1000, 1)


async def handoff_load(port: int, sessions: list[tuple[str, str]], account_id: int, seconds: float,
                       think: float = 0.0) -> dict:
    """Every user POSTs the hand-off in a loop until the time is up; a 303 is a success.

    ``think`` = 0 is a closed loop (each user clicks again as soon as the answer
    arrives: the server's capacity); otherwise each user waits about ``think``
    seconds (0.5x-1.5x, seeded) between clicks, which offers users/think requests/s.
    """
    import random

    rng = random.Random(7)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    stop = time.perf_counter() + seconds

    async def user(cookie: str, csrf: str) -> None:
        conn = Conn(port)
        raw = _request("POST", f"/bridge/open/{account_id}", cookie, f"csrf_token={csrf}")
        while time.perf_counter() < stop:
            try:
                status, took = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                conn = Conn(port)
                continue
            if status == 200:  # the hand-off page that posts the token to Roundcube
                latencies.append(took)
            else:
                errors[str(status)] = errors.get(str(status), 0) + 1
            if think:
                await asyncio.sleep(think * (0.5 + rng.random()))

    started = time.perf_counter()
    await asyncio.gather(*(user(c, t) for c, t in sessions))
    wall = time.perf_counter() - started
    return {"users": len(sessions), "think_s": think, "seconds": round(wall, 1), "requests": len(latencies),
            "errors": sum(errors.values()), "error_kinds": errors,
            "requests_per_s": round(len(latencies) / wall, 1),
            "p50_ms": pct(latencies, 0.50), "p95_ms": pct(latencies, 0.95), "p99_ms": pct(latencies, 0.99)}


async def page_latency(port: int, cookie: str, path: str, count: int) -> dict:
    conn = Conn(port)
    raw = _request("GET", path, cookie)
    times, bad = [], 0
    for _ in range(count):
        status, took = await conn.request(raw)
        if status == 200:
            times.append(took)
        else:
            bad += 1
    return {"path": path, "requests": count, "errors": bad, "p50_ms": pct(times, 0.5), "p95_ms": pct(times, 0.95)}


def page_cpu(url: str, paths: list[tuple[str, str]], count: int = 20) -> list[dict]:
    """CPU time of the app for each (user, path), in this process: the figure the machine's load bends least.

    The HTTP figures include waiting for a CPU, which on a shared machine is most of the time; this
    counts only the CPU the request itself used (``time.process_time``, Flask's test client, the same
    database), p50/p95 over ``count`` requests after a warm-up.
    """
    from app import create_app

    app = create_app("development", SQLALCHEMY_DATABASE_URI=url, QUEUE_MODE="inline", WTF_CSRF_ENABLED=False,
                     SECRET_KEY="bench-web-secret", LOG_LEVEL="WARNING",
                     MAIL_ENCRYPTION_KEY=os.environ.get("MAIL_ENCRYPTION_KEY") or BENCH_KEY)
    results = []
    for username, path in paths:
        client = app.test_client()
        client.post("/login", data={"username": username, "password": PASSWORD})
        client.get(path)
        times = []
        for _ in range(count):
            started = time.process_time()
            status = client.get(path).status_code
            times.append(time.process_time() - started)
            assert status == 200, f"{path} as {username}: {status}"
        results.append({"path": path, "as": username, "cpu_p50_ms": pct(times, 0.5), "cpu_p95_ms": pct(times, 0.95)})
    return results


def run_backend(backend: str, args) -> dict:
    dbs = Databases(backend)
    proc = None
    try:
        url = dbs.new("web")
        t0 = time.perf_counter()
        account_id = seed(url, args.users, args.rows, args.scanners)
        print(f"  seeded {args.scanners} scanners, {args.rows} runs + {args.rows} e-mails in "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        port = free_port()
        proc = start_gunicorn(url, port)
        base = f"http://127.0.0.1:{port}"
        admin = login(base, "admin")
        sessions = [login(base, f"user{i}") for i in range(args.users)]
        # Warm up each worker (imports, first queries) before anything is timed.
        asyncio.run(handoff_load(port, sessions[:4], account_id, 2))
        handoffs = []
        for think in () if args.pages_only else (args.think, 0.0):
            load_before = load()
            handoff = asyncio.run(handoff_load(port, sessions, account_id, args.seconds, think))
            handoff["load_avg"] = [load_before, load()]
            handoffs.append(handoff)
            print(f"  hand-off: {json.dumps(handoff)}", flush=True)
        deep = args.rows // 50 // 2
        pages = []
        # The start page as a user is the baseline of the administrator's: the same page without the board.
        for who, cookie, path in (("admin", admin[0], "/admin/history"),
                                  ("admin", admin[0], f"/admin/history?page={deep}"),
                                  ("admin", admin[0], "/records/emails"),
                                  ("admin", admin[0], f"/records/emails?page={deep}"),
                                  ("user", sessions[0][0], "/"), ("admin", admin[0], "/")):
            asyncio.run(page_latency(port, cookie, path, 3))  # warm-up
            result = asyncio.run(page_latency(port, cookie, path, 50))
            result["as"] = who
            result["load_avg"] = load()
            pages.append(result)
            print(f"  page: {json.dumps(result)}", flush=True)
        cpu = page_cpu(url, [("admin", "/records/emails"), ("user0", "/"), ("admin", "/")])
        for result in cpu:
            print(f"  cpu: {json.dumps(result)}", flush=True)
        return {"backend": backend, "rows": args.rows, "scanners": args.scanners, "cpu": cpu,
                "handoff": handoffs[0] if handoffs else None,
                "handoff_closed_loop": handoffs[1] if handoffs else None, "pages": pages}
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        dbs.drop_all()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--think", type=float, default=1.0,
                        help="seconds each user waits between clicks (the closed loop, 0, is run too)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--scanners", type=int, default=1000, help="scanners in all, for the start page's board")
    parser.add_argument("--pages-only", action="store_true", help="measure the pages only, not the hand-off")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args(argv)
    out = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
           "backends": []}
    backends = [b for b in ("sqlite", "postgresql") if args.db in (b, "both")]
    for backend in backends:
        if backend == "postgresql" and not postgres_reachable():
            continue
        print(f"== {backend} == (load {load()})", flush=True)
        out["backends"].append(run_backend(backend, args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "web.json").write_text(json.dumps(out, indent=2))
    print(f"written to {RESULTS / 'web.json'}")


if __name__ == "__main__":
    sys.exit(main())
