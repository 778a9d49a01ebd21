"""First import of a 50,000-message mailbox at the default settings, beside the engine's own time.

    .venv/bin/python -m bench.first_import [--messages 50000]

Against the private Dovecot and a private redis-server, each measurement on a fresh SQLite file
and the same mailbox (written straight into its Maildir by ``bench.corpus``):

1. engine: one unbounded run (``Max per run`` 0) with ``flask --app wsgi scanners run ID``; its
   time is the run's own (started → finished, from the database).
2. import, in place: the default settings (500 messages a run, batches of 200, ``SCAN_RUN_SECONDS``
   5) on a real ``python worker.py``; the clock runs from the scan being queued to the last
   message stored. Nothing else waits, so each continuation runs in the same job.
3. import, re-enqueued: the same with ``SCAN_CONTINUE_IN_PLACE=0``: every continuation is a job of
   its own at the back of the backlog queue (what happens when other scans wait): the cost of
   the re-enqueue.
4. today's polling path, from the same figures: one run of 500 per check, a check every 5 minutes
   (the default frequency): ``ceil(messages / 500)`` checks.

Prints the figures and writes them to ``bench/results/first_import.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STATE = ROOT / ".state" / "bench"
PASSWORD = "importbenchpw"


def seed(app, dovecot, login: str, max_per_run: int) -> int:
    """A mail server and a scanner on the mailbox's INBOX; the mail configuration's budget."""
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import MailAccount, MailServer, MailSettings, ScanFolder
    from tests.scan_helpers import KEY

    with app.app_context():
        settings = MailSettings.get()
        settings.max_per_run = max_per_run  # the others stay at their defaults (batches of 200)
        server = MailServer(name="bench dovecot", imap_host=dovecot.host, imap_port=dovecot.port,
                            imap_security="none", smtp_host=dovecot.host, smtp_port=25, smtp_security="none")
        account = MailAccount(name=login, server=server, login=login, password_enc=encrypt_secret(KEY, PASSWORD),
                              folders=[ScanFolder(name="INBOX")])
        db.session.add_all([server, account])
        db.session.commit()
        return account.id


def runs_of(app) -> list[dict]:
    from sqlalchemy import select

    from app.extensions import db
    from app.models import ScanRun

    with app.app_context():
        rows = db.session.execute(select(ScanRun.status, ScanRun.created, ScanRun.started_at, ScanRun.finished_at,
                                         ScanRun.job_id).order_by(ScanRun.id)).all()
        db.session.commit()
    return [{"status": r.status, "created": r.created, "started": r.started_at, "finished": r.finished_at,
             "job_id": r.job_id} for r in rows]


def engine(work: Path, dovecot, redis_url: str, login: str) -> dict:
    """One unbounded run through the CLI; the run's own time."""
    from tests.scan_helpers import close_app, shared_app

    work.mkdir(parents=True, exist_ok=True)
    app, env = shared_app(work, redis_url)
    account_id = seed(app, dovecot, login, max_per_run=0)
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "flask"), "--app", "wsgi", "scanners", "run", str(account_id),
                           "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"the engine run failed: {proc.stdout[-500:]} {proc.stderr[-2000:]}")
    runs = runs_of(app)
    close_app(app)
    run = runs[0]
    return {"runs": len(runs), "stored": run["created"],
            "seconds": round((run["finished"] - run["started"]).total_seconds(), 2)}


def import_on_worker(work: Path, dovecot, redis_url: str, login: str, messages: int, in_place: bool) -> dict:
    """The default settings on a real worker: from the scan queued to the last message stored."""
    from app.jobqueue import jobs
    from tests.scan_helpers import close_app, count_emails, shared_app

    work.mkdir(parents=True, exist_ok=True)
    app, env = shared_app(work, redis_url)
    env = {**env, "SCAN_CONTINUE_IN_PLACE": "1" if in_place else "0", "LOG_LEVEL": "WARNING"}
    account_id = seed(app, dovecot, login, max_per_run=500)
    worker = subprocess.Popen([sys.executable, str(ROOT / "worker.py"), "--no-schedule"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=(STATE / "first-import-worker.log").open("w"))
    try:
        _wait_for_worker(app)  # the worker is up and listening before the clock starts
        started = time.monotonic()
        with app.app_context():
            jobs.submit_scan_job(app, account_id, "manual")
        while count_emails(app, account_id) < messages:
            if time.monotonic() - started > 3600 or worker.poll() is not None:
                raise SystemExit("the import did not finish (see .state/bench/first-import-worker.log)")
            time.sleep(0.2)
        seconds = time.monotonic() - started
    finally:
        worker.terminate()
        worker.wait(60)
    runs = runs_of(app)
    close_app(app)
    return {"runs": len(runs), "jobs": len({r["job_id"] for r in runs} - {None}),
            "statuses": sorted({r["status"] for r in runs}), "stored": sum(r["created"] for r in runs),
            "seconds": round(seconds, 2)}


def _wait_for_worker(app, timeout: float = 120) -> None:
    from rq import Worker

    from app.jobqueue.connection import redis_connection

    deadline = time.monotonic() + timeout
    while Worker.count(connection=redis_connection(app)) < 1:
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not start (see .state/bench/first-import-worker.log)")
        time.sleep(0.2)
    time.sleep(1)  # registered, then listening on its queues


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.corpus import fill_maildir
    from tests.faults.redis_server import RedisServer
    from tests.services import ensure_dovecot

    STATE.mkdir(parents=True, exist_ok=True)
    dovecot = ensure_dovecot()
    login = f"import{args.messages}@corp.test"
    dovecot.add_user(login, PASSWORD)
    began = time.perf_counter()
    size = fill_maildir(Path(dovecot.maildir(login)), args.messages, matching_contacts=0, owner=(65534, 65534))
    print(f"mailbox {login}: {args.messages} messages, {size / 1e6:.0f} MB, ready in "
          f"{time.perf_counter() - began:.0f} s", flush=True)
    tag = uuid.uuid4().hex[:6]
    work = STATE / f"first-import-{tag}"
    redis_server = RedisServer(work / "redis")
    redis_server.start()
    result: dict = {"messages": args.messages, "load_before": round(os.getloadavg()[0], 2)}
    try:
        # The first read warms Dovecot's index and the page cache for every measurement alike.
        result["engine_warmup"] = engine(work / "warm", dovecot, redis_server.url, login)
        result["engine"] = engine(work / "engine", dovecot, redis_server.url, login)
        print(f"  engine (one unbounded run): {result['engine']}", flush=True)
        result["import_in_place"] = import_on_worker(work / "in-place", dovecot, redis_server.url, login,
                                                     args.messages, True)
        print(f"  import, default settings, continued in place: {result['import_in_place']}", flush=True)
        result["import_reenqueued"] = import_on_worker(work / "queued", dovecot, redis_server.url, login,
                                                       args.messages, False)
        print(f"  import, default settings, every continuation re-enqueued: {result['import_reenqueued']}",
              flush=True)
    finally:
        redis_server.stop()
    checks = math.ceil(args.messages / 500)
    result["polling_path"] = {"checks": checks, "hours": round(checks * 5 / 60, 1),
                              "note": "one run of 500 per check, a check every 5 minutes (the defaults)"}
    engine_s = result["engine"]["seconds"]
    for key in ("import_in_place", "import_reenqueued"):
        result[key]["x_engine"] = round(result[key]["seconds"] / engine_s, 2)
    result["load_after"] = round(os.getloadavg()[0], 2)
    print(f"  today's polling path: {checks} checks 5 minutes apart = {result['polling_path']['hours']} h")
    print(f"  import / engine: in place {result['import_in_place']['x_engine']}x, "
          f"re-enqueued {result['import_reenqueued']['x_engine']}x (target: within 1.5x)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "first_import.json").write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
