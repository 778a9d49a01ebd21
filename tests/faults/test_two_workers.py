"""Fault: two workers given the same scanner at once.

The queue's stable job id normally keeps a scanner's scan from being queued
twice; here it is bypassed (two jobs with different ids for one scanner, as
after a lost Redis key or a second queue), and two ``python worker.py``
processes start together. The first scan is held in the middle of its second
batch (a loopback proxy stalls the FETCH answer) so the two overlap for sure:
the compare-and-set on ``mail_accounts.running_run_id`` lets one run, the other
job ends "already running", and so does ``flask scanners run`` from the
command line. A second test releases four scans of one scanner at the same
instant (threads behind a barrier, on SQLite and PostgreSQL): exactly one gets
the mailbox. Every message is stored once, by one run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from rq import Queue
from rq.job import Job, JobStatus
from sqlalchemy import select

from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.models import ScanRun
from app.scanning.errors import ScanAlreadyRunning
from app.scanning.run import run_scan
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    ROOT,
    add_scanner,
    assert_stored_once,
    database_app,
    kill_worker,
    server_uids,
    shared_app,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

TOTAL, BATCH = 600, 100


def test_two_workers_on_one_scanner_only_one_runs(tmp_path, dovecot, private_redis):
    app, worker_env = shared_app(tmp_path, private_redis.url)
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    workers = []
    try:
        login, password = dovecot.new_user("twice")
        account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
        proxy.arm("stall", nth=2, nbytes=8192)
        conn = redis_connection(app)
        queue = Queue(jobs.SCAN_QUEUE, connection=conn)
        job_ids = [f"scan-{account_id}-a", f"scan-{account_id}-b"]
        for job_id in job_ids:
            queue.enqueue_call(jobs.SCAN_JOB, args=(account_id, "schedule"), job_id=job_id, result_ttl=600)
        started = time.monotonic()
        workers = [start_worker(worker_env, "--burst"), start_worker(worker_env, "--burst")]

        assert proxy.triggered.wait(60), "no scan reached its second batch"
        # One job is refused while the other is held mid-batch.
        refused = wait_until(lambda: [j for j in job_ids if Job.fetch(j, connection=conn).get_status()
                                      == JobStatus.FINISHED], timeout=60, what="the second job to end")
        assert len(refused) == 1
        with app.app_context():
            run_id = db.session.scalars(select(ScanRun.id)).one()
            db.session.commit()
        assert Job.fetch(refused[0], connection=conn).return_value() == {"status": "already_running",
                                                                         "run_id": run_id}
        # The command line is refused too, with a readable reason and exit code 1.
        cli = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "scanners", "run", str(account_id),
                              "--json"], cwd=ROOT, env=worker_env, capture_output=True, text=True, timeout=60)
        assert cli.returncode == 1, cli.stderr
        answer = json.loads(cli.stdout.strip().splitlines()[-1])
        assert (answer["status"], answer["run_id"]) == ("already_running", run_id)
        assert "already running" in answer["message"]

        proxy.heal()
        for proc in workers:
            out, _ = proc.communicate(timeout=120)
            assert proc.returncode == 0, out.decode(errors="replace")
        winner = next(j for j in job_ids if j not in refused)
        result = Job.fetch(winner, connection=conn).return_value()
        assert {k: result[k] for k in ("status", "run_id", "downloaded", "created")} == {
            "status": "done", "run_id": run_id, "downloaded": TOTAL, "created": TOTAL}
        took = time.monotonic() - started
    finally:
        proxy.close()
        for proc in workers:
            if proc.poll() is None:
                kill_worker(proc, app)
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["done"]}
    print(f"two workers: 2 jobs + 1 CLI run for one scanner, 1 run ({figures['runs']}), {TOTAL} messages, "
          f"{took:.2f} s")


@pytest.fixture(params=["sqlite", "postgresql"])
def race_app(request, tmp_path):
    """An app on a SQLite file or a throwaway PostgreSQL database (connections shared by threads)."""
    with database_app(tmp_path, "redis://127.0.0.1:1/0", request.param) as (app, _, _url):
        yield app


def test_scans_started_at_the_same_instant_only_one_runs(race_app, dovecot):
    """Four scans of one scanner released by a barrier together: the compare-and-set lets exactly one in."""
    app = race_app
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    outcomes: dict[int, object] = {}
    barrier = threading.Barrier(4)

    def attempt(n: int) -> None:
        with app.app_context():
            try:
                barrier.wait(10)
                run = run_scan(account_id, trigger="manual")
                outcomes[n] = ("ran", run.id, run.status, run.created)
            except ScanAlreadyRunning as busy:
                outcomes[n] = ("refused", busy.run_id)
            except Exception as exc:  # reported by the assertion below
                outcomes[n] = ("error", repr(exc))
            finally:
                db.session.remove()

    try:
        login, password = dovecot.new_user("race")
        account_id = add_scanner(app, dovecot, TOTAL, batch_size=BATCH, port=proxy.port, login=(login, password))
        # The winner is held in its second batch until the losers have answered.
        proxy.arm("stall", nth=2, nbytes=8192)
        threads = [threading.Thread(target=attempt, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        assert proxy.triggered.wait(60), "no scan reached its second batch"
        wait_until(lambda: len(outcomes) == 3, timeout=60, what="the three losers to answer")
        proxy.heal()
        for thread in threads:
            thread.join(60)
    finally:
        proxy.close()
    ran = [o for o in outcomes.values() if o[0] == "ran"]
    refused = [o for o in outcomes.values() if o[0] == "refused"]
    assert len(ran) == 1 and len(refused) == 3, outcomes
    assert ran[0][2:] == ("done", TOTAL)
    assert all(r[1] == ran[0][1] for r in refused), outcomes
    figures = assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert figures == {"stored": TOTAL, "runs": ["done"]}
