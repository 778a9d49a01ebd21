"""Watcher cost at 1,000 idle watched mailboxes, beside today's polling path for the same mailboxes.

    .venv/bin/python -m bench.watch_cost [--mailboxes 1000] [--idle 60] [--skip-clients]

Against the private Dovecot (``scripts/services.sh`` sets its process limits for 1,000
connections) and a private redis-server:

1. ``--mailboxes`` users, each with an empty INBOX, and a scanner each (SQLite file).
2. Client libraries: one process holds an IDLE connection per mailbox with our client
   (``app.watch.imap``) and then with aioimaplib (``bench.watch_clients``): RSS and CPU.
3. The watcher: ``python watcher.py`` until every scanner is watched, then its RSS and CPU over
   ``--idle`` seconds of idling (heartbeats, leases, states and the scanner refresh included).
4. Today's polling path: one cycle of the schedule, i.e. one ``run_scan`` per scanner (a login,
   a STATUS, a logout each), timed in this process; the 5-minute schedule repeats it every 5
   minutes, so its average cost is the cycle's CPU over 300 s.

Prints the figures and writes them to ``bench/results/watch_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from bench.watch_clients import cpu_seconds, rss_mb

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STATE = ROOT / ".state" / "bench"
PASSWORD = "watchbenchpw"


def make_users(dovecot, count: int, tag: str) -> list[str]:
    """``count`` Dovecot users written straight into users.d (one file each, read fresh on login)."""
    users_d = dovecot.users_file.with_name("users.d")
    users_d.mkdir(exist_ok=True)
    logins = [f"wb{tag}-{i}@corp.test" for i in range(count)]
    for login in logins:
        path = users_d / login
        path.write_text(f"{login}:{{PLAIN}}{PASSWORD}::::::\n")
        path.chmod(0o644)
    return logins


def clients(dovecot, logins: list[str], idle: float) -> list[dict]:
    """Our IMAP client and aioimaplib, each holding one IDLE connection per mailbox."""
    users = STATE / f"watch-users-{uuid.uuid4().hex[:6]}.txt"
    users.write_text("".join(f"{login} {PASSWORD}\n" for login in logins))
    found = []
    try:
        for client in ("ours", "aioimaplib"):
            proc = subprocess.run([sys.executable, "-m", "bench.watch_clients", "--client", client, "--port",
                                   str(dovecot.port), "--users", str(users), "--connections", str(len(logins)),
                                   "--idle", str(idle)], cwd=ROOT, capture_output=True, text=True, timeout=900)
            if proc.returncode != 0:
                found.append({"client": client, "error": proc.stderr.strip().splitlines()[-1:]})
                continue
            found.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"  client {client}: {found[-1]}", flush=True)
            time.sleep(3)  # let Dovecot's processes of the closed connections exit
    finally:
        users.unlink(missing_ok=True)
    return found


def seed(app, dovecot, logins: list[str]) -> list[int]:
    """One mail server and a scanner on INBOX per login."""
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import MailAccount, MailServer, ScanFolder
    from tests.scan_helpers import KEY

    with app.app_context():
        server = MailServer(name="bench dovecot", imap_host=dovecot.host, imap_port=dovecot.port,
                            imap_security="none", smtp_host=dovecot.host, smtp_port=25, smtp_security="none")
        secret = encrypt_secret(KEY, PASSWORD)
        accounts = [MailAccount(name=login, server=server, login=login, password_enc=secret,
                                folders=[ScanFolder(name="INBOX")]) for login in logins]
        db.session.add_all([server, *accounts])
        db.session.commit()
        return [a.id for a in accounts]


def watcher(app, env: dict, ids: list[int], idle: float) -> dict:
    """Run watcher.py until every scanner is watched, then measure it idling."""
    from app.jobqueue.connection import redis_connection
    from app.watch import state

    proc = subprocess.Popen([sys.executable, str(ROOT / "watcher.py")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=(STATE / "watch-cost-watcher.log").open("w"))
    try:
        started = time.monotonic()
        conn = redis_connection(app)
        watched: set[int] = set()
        while len(watched) < len(ids):
            if time.monotonic() - started > 600 or proc.poll() is not None:
                break
            time.sleep(1)
            watched = state.watched_ids(conn, ids)
        all_watched = time.monotonic() - started
        states = state.read_states(conn, ids)
        kinds = sorted({s.state for s in states.values()})
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(idle)
        cpu, wall = cpu_seconds(proc.pid) - cpu0, time.monotonic() - wall0
        return {"mailboxes": len(ids), "watched": len(watched), "states": kinds,
                "seconds_to_watch_all": round(all_watched, 1), "rss_mb": round(rss_mb(proc.pid), 1),
                "cpu_percent": round(100 * cpu / wall, 3), "idle_seconds": round(wall, 1)}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def polling_cycle(app, ids: list[int]) -> dict:
    """One cycle of today's schedule: a run_scan (login, STATUS, logout) per scanner."""
    from app.scanning.run import run_scan

    usage0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    with app.app_context():
        for account_id in ids:
            run_scan(account_id, trigger="schedule")
    usage1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0
    cpu = (usage1.ru_utime - usage0.ru_utime) + (usage1.ru_stime - usage0.ru_stime)
    return {"mailboxes": len(ids), "logins_per_cycle": len(ids), "cycle_seconds": round(wall, 1),
            "cycle_cpu_seconds": round(cpu, 2), "cpu_percent_at_5_min": round(100 * cpu / 300, 3),
            "note": "one process; the worker also forks a work horse per scan"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=1000)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--skip-clients", action="store_true")
    args = parser.parse_args(argv)

    from tests.faults.redis_server import RedisServer
    from tests.scan_helpers import close_app, shared_app
    from tests.services import ensure_dovecot

    STATE.mkdir(parents=True, exist_ok=True)
    dovecot = ensure_dovecot()
    logins = make_users(dovecot, args.mailboxes, uuid.uuid4().hex[:4])
    result: dict = {"mailboxes": args.mailboxes, "load_before": round(os.getloadavg()[0], 2)}
    if not args.skip_clients:
        result["clients"] = clients(dovecot, logins, args.idle)
    elif (RESULTS / "watch_cost.json").exists():  # kept from the run that measured them, and said so
        earlier = json.loads((RESULTS / "watch_cost.json").read_text()).get("clients")
        if earlier:
            result["clients"] = earlier
            result["clients_from_an_earlier_run"] = True
    work = STATE / f"watch-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    redis_server = RedisServer(work / "redis")
    redis_server.start()
    app, env = shared_app(work, redis_server.url)
    try:
        ids = seed(app, dovecot, logins)
        env = {**env, "LOG_LEVEL": "WARNING"}
        result["watcher"] = watcher(app, env, ids, args.idle)
        print(f"  watcher: {result['watcher']}", flush=True)
        result["polling_today"] = polling_cycle(app, ids)
        print(f"  polling today: {result['polling_today']}", flush=True)
    finally:
        close_app(app)
        redis_server.stop()
    result["load_after"] = round(os.getloadavg()[0], 2)
    result["targets"] = {"rss_mb": 150, "cpu_percent": 2}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "watch_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
