"""Delivery-to-record latency: APPEND to random watched mailboxes, time until the e-mail is stored.

    .venv/bin/python -m bench.delivery_latency [--mailboxes 200] [--messages 100] [--backlog 20000]
                                               [--poll-minutes 1] [--poll-messages 20]

Against the private Dovecot and a private redis-server, on a SQLite file, with the real processes
``python watcher.py`` and one ``python worker.py`` (what ``scripts/run.sh`` starts):

1. ``--mailboxes`` users with an empty INBOX and a scanner each, every one watched (NOTIFY).
2. idle: ``--messages`` messages, each APPENDed to a random one of them 0.1–0.3 s apart; the
   latency of each is from the APPEND's answer to the moment its e-mail row is seen in the
   database (looked for every 50 ms).
3. with backlogs: two more mailboxes holding ``--backlog`` messages each (written into their
   Maildir by ``bench.corpus``) get a scanner and a scan; once both are under way, the same
   APPENDs again. The backlogs' progress at the end says they were still being worked. The corpus
   gives both mailboxes the same Message-IDs, so the second one's messages are read, parsed and
   linked to the first one's rather than stored anew.
4. today's polling path, beside it: the watcher stopped, the worker's schedule on at a check
   frequency of ``--poll-minutes`` (the default is 5: its latencies scale with it), and
   ``--poll-messages`` APPENDs spread over two check periods.

Prints p50, p95 and max of each and writes them to ``bench/results/delivery_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STATE = ROOT / ".state" / "bench"
PASSWORD = "watchbenchpw"  # bench.watch_cost.make_users writes its users with it


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))] if ordered else 0.0


def summary(latencies: list[float], sent: int) -> dict:
    return {"sent": sent, "stored": len(latencies), "p50_s": round(percentile(latencies, 0.5), 2),
            "p95_s": round(percentile(latencies, 0.95), 2), "max_s": round(max(latencies, default=0.0), 2)}


def probe(i: int, tag: str) -> tuple[str, bytes]:
    mid = f"probe-{i}-{tag}@bench.test"
    raw = (f"From: customer{i % 50}@acme.test\r\nTo: support@corp.test\r\nSubject: Latency probe {i}\r\n"
           f"Message-ID: <{mid}>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n\r\nProbe {i}.\r\n").encode()
    return mid, raw


class Seen:
    """Looks for the probes' e-mails in the database every 50 ms and notes when each appears."""

    def __init__(self, app) -> None:
        self.app = app
        self.pending: dict[str, float] = {}  # message id → time of the APPEND's answer
        self.latency: dict[str, float] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def sent(self, mid: str, at: float) -> None:
        with self.lock:
            self.pending[mid] = at

    def _loop(self) -> None:
        from sqlalchemy import select

        from app.extensions import db
        from app.models import Email

        with self.app.app_context():
            while not self.stop.is_set():
                with self.lock:
                    wanted = list(self.pending)
                if wanted:
                    forms = wanted + [f"<{m}>" for m in wanted]
                    found = set(db.session.scalars(select(Email.message_id).where(Email.message_id.in_(forms))))
                    db.session.commit()
                    now = time.time()
                    with self.lock:
                        for mid in wanted:
                            if mid in found or f"<{mid}>" in found:
                                self.latency[mid] = now - self.pending.pop(mid)
                time.sleep(0.05)

    def wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.2)


def send(dovecot, logins: list[str], seen: Seen, count: int, tag: str, gap: tuple[float, float]) -> list[str]:
    """APPEND ``count`` probes to random mailboxes, ``gap`` seconds apart; returns their message ids."""
    rng = random.Random(tag)
    mids = []
    for i in range(count):
        mid, raw = probe(i, tag)
        dovecot.append(rng.choice(logins), PASSWORD, "INBOX", raw)
        seen.sent(mid, time.time())
        mids.append(mid)
        time.sleep(rng.uniform(*gap))
    return mids


def phase(dovecot, logins, seen: Seen, count: int, tag: str, gap=(0.1, 0.3), timeout: float = 120) -> dict:
    mids = send(dovecot, logins, seen, count, tag, gap)
    seen.wait(timeout)
    return summary([seen.latency[m] for m in mids if m in seen.latency], len(mids))


def start(script: str, env: dict, log: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / script), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(STATE / log).open("w"), start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_watched(app, ids: list[int], timeout: float = 600) -> float:
    from app.jobqueue.connection import redis_connection
    from app.watch import state

    began = time.monotonic()
    while len(state.watched_ids(redis_connection(app), ids)) < len(ids):
        if time.monotonic() - began > timeout:
            raise SystemExit("not every mailbox was watched in time (see .state/bench/latency-watcher.log)")
        time.sleep(1)
    return time.monotonic() - began


def backlog_progress(app, ids: list[int]) -> dict:
    from sqlalchemy import func, select

    from app.extensions import db
    from app.models import Email, MailAccount

    with app.app_context():
        out = {aid: {"stored": db.session.scalar(select(func.count(Email.id)).where(Email.account_id == aid)),
                     "backlog": db.session.get(MailAccount, aid).backlog} for aid in ids}
        db.session.commit()
    return out


def add_scanners(app, dovecot, logins: list[str], server_name: str) -> list[int]:
    """A mail server named ``server_name`` and a scanner on the INBOX of each login."""
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import MailAccount, MailServer, ScanFolder
    from tests.scan_helpers import KEY

    with app.app_context():
        server = MailServer(name=server_name, imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                            smtp_host=dovecot.host, smtp_port=25, smtp_security="none")
        secret = encrypt_secret(KEY, PASSWORD)
        accounts = [MailAccount(name=login, server=server, login=login, password_enc=secret,
                                folders=[ScanFolder(name="INBOX")]) for login in logins]
        db.session.add_all([server, *accounts])
        db.session.commit()
        return [a.id for a in accounts]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--messages", type=int, default=100)
    parser.add_argument("--backlog", type=int, default=20_000)
    parser.add_argument("--poll-minutes", type=int, default=1)
    parser.add_argument("--poll-messages", type=int, default=20)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from app.extensions import db
    from app.jobqueue import jobs
    from app.models import MailSettings
    from bench.corpus import fill_maildir
    from bench.watch_cost import make_users
    from tests.faults.redis_server import RedisServer
    from tests.scan_helpers import close_app, shared_app
    from tests.services import ensure_dovecot

    STATE.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:6]
    dovecot = ensure_dovecot()
    logins = make_users(dovecot, args.mailboxes, f"lat{tag}")
    heavy = [f"backlog{i}-{args.backlog}@corp.test" for i in range(2)]
    for login in heavy:
        dovecot.add_user(login, PASSWORD)
        fill_maildir(Path(dovecot.maildir(login)), args.backlog, matching_contacts=0, seed=11 + len(login),
                     owner=(65534, 65534))
    work = STATE / f"latency-{tag}"
    work.mkdir(parents=True)
    redis_server = RedisServer(work / "redis")
    redis_server.start()
    app, env = shared_app(work, redis_server.url)
    env = {**env, "LOG_LEVEL": "WARNING"}
    result: dict = {"mailboxes": args.mailboxes, "load_before": round(os.getloadavg()[0], 2)}
    ids = add_scanners(app, dovecot, logins, "watched mailboxes")
    worker = start("worker.py", env, "latency-worker.log", "--no-schedule")
    watcher = start("watcher.py", env, "latency-watcher.log")
    seen = Seen(app)
    try:
        result["seconds_to_watch_all"] = round(wait_watched(app, ids), 1)
        print(f"{args.mailboxes} mailboxes watched after {result['seconds_to_watch_all']} s", flush=True)
        result["watched_idle"] = phase(dovecot, logins, seen, args.messages, f"idle{tag}")
        print(f"  watched, idle: {result['watched_idle']}", flush=True)

        heavy_ids = add_scanners(app, dovecot, heavy, "backlog mailboxes")
        for account_id in heavy_ids:
            with app.app_context():
                jobs.submit_scan_job(app, account_id, "manual")
        while any((p["backlog"] is None or p["backlog"] > args.backlog - 1000)
                  for p in backlog_progress(app, heavy_ids).values()):
            time.sleep(0.5)  # both are under way
        result["watched_backlogs"] = phase(dovecot, logins, seen, args.messages, f"busy{tag}")
        result["backlogs_at_end"] = backlog_progress(app, heavy_ids)
        print(f"  watched, two {args.backlog}-message backlogs running: {result['watched_backlogs']}; "
              f"backlogs at the end: {result['backlogs_at_end']}", flush=True)
        stop(watcher)
        stop(worker)
        while max(p["backlog"] or 0 for p in backlog_progress(app, heavy_ids).values()) > 0:
            # Let the backlogs finish on a burst worker, so that today's path measures polling alone.
            subprocess.run([sys.executable, str(ROOT / "worker.py"), "--burst"], cwd=ROOT, env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
            with app.app_context():
                for account_id in heavy_ids:
                    jobs.submit_scan_job(app, account_id, "manual")

        with app.app_context():
            MailSettings.get().check_frequency_minutes = args.poll_minutes
            db.session.commit()
        worker = start("worker.py", env, "latency-poll-worker.log")
        gap = 2 * 60 * args.poll_minutes / max(1, args.poll_messages)
        result["polling"] = phase(dovecot, logins, seen, args.poll_messages, f"poll{tag}", gap=(gap, gap),
                                  timeout=3 * 60 * args.poll_minutes)
        result["polling"]["check_minutes"] = args.poll_minutes
        print(f"  today's polling path (checks every {args.poll_minutes} min): {result['polling']}", flush=True)
    finally:
        seen.stop.set()
        for proc in (watcher, worker):
            if proc.poll() is None:
                stop(proc)
        close_app(app)
        redis_server.stop()
    result["load_after"] = round(os.getloadavg()[0], 2)
    result["targets"] = {"idle_p95_s": 2, "backlogs_p95_s": 5}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "delivery_latency.json").write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
