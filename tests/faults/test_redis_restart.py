"""Fault: Redis restarted (everything in it lost) while one scan job runs and two are queued.

Two outages: a quick restart while A's job runs, and Redis down until after
A's job has ended (RQ's worker loop then gives up; ``worker.py`` waits for
Redis and starts a new loop instead of exiting).

A private ``redis-server`` (no persistence, so the restart loses every key, the
worst case) serves the queue. Scanner A's job is running, held in the middle
of its second batch by a loopback proxy; B's and C's jobs wait in the queue.
Redis is killed and started again: the queued jobs are gone. A's scan carries
on (its progress reports fail quietly) and ends done; the schedule
(``app.tasks.schedule.enqueue_due``, which the worker runs every 30 s) enqueues
B and C again because they never ran; the worker, still alive, runs them.
Every message of the three mailboxes ends stored once.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.models import MailAccount, MailServer, ScanFolder, ScanRun
from app.models.base import utcnow
from app.scanning import liveness
from app.services import scans
from app.tasks import schedule
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    add_scanner,
    assert_stored_once,
    kill_worker,
    server_uids,
    shared_app,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration

BIG, SMALL, BATCH = 600, 40, 100


def _statuses(app, account_ids) -> dict[int, list[str]]:
    with app.app_context():
        rows = db.session.execute(select(ScanRun.account_id, ScanRun.status).order_by(ScanRun.id)).all()
        db.session.commit()
    return {aid: [status for a, status in rows if a == aid] for aid in account_ids}


@pytest.mark.parametrize("outage", ["restart", "down-until-the-job-ends"])
def test_redis_restarted_with_jobs_queued_and_running(tmp_path, dovecot, private_redis, outage):
    app, worker_env = shared_app(tmp_path, private_redis.url)
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    worker = None
    try:
        boxes = {}
        login = dovecot.new_user("redis-a")
        boxes[add_scanner(app, dovecot, BIG, batch_size=BATCH, port=proxy.port, login=login, name="A")] = login
        for n, name in enumerate(("B", "C"), 1):
            login = dovecot.new_user(f"redis-{name.lower()}")
            # Each mailbox its own messages: the same message in two mailboxes would be stored once.
            boxes[add_scanner(app, dovecot, SMALL, batch_size=BATCH, login=login, name=name,
                              first=n * 100_000)] = login
        big, *small = boxes
        proxy.arm("stall", nth=2, nbytes=8192)
        with app.app_context():
            for account_id in boxes:
                scans.enqueue_scan(account_id)
        started = time.monotonic()
        # --no-schedule: the test plays the schedule's tick itself instead of waiting 30 s for it.
        worker = start_worker(worker_env, "--no-schedule")
        assert proxy.triggered.wait(60), "A's scan did not reach its second batch"
        conn = redis_connection(app)
        assert Queue(jobs.SCAN_QUEUE, connection=conn).count == 2  # B and C wait

        if outage == "restart":
            private_redis.restart(down_for=0.5)
            proxy.heal()
            wait_until(lambda: _statuses(app, [big])[big] == ["done"], timeout=60, what="A's run to end")
        else:
            # Redis is still down when A's job ends: RQ's loop gives up; worker.py must wait and carry on.
            private_redis.stop()
            proxy.heal()
            wait_until(lambda: _statuses(app, [big])[big] == ["done"], timeout=60, what="A's run to end")
            time.sleep(1.0)
            private_redis.start()
        assert Queue(jobs.SCAN_QUEUE, connection=conn).count == 0  # the queued jobs are lost
        assert worker.poll() is None, "the worker died with the Redis outage"

        # The schedule's tick: B and C never ran, so they are due and enqueued again (A just ran: not due).
        with app.app_context():
            enqueued = schedule.enqueue_due(app)
        assert sorted(enqueued) == sorted(jobs.scan_job_id(a) for a in small)
        wait_until(lambda: all(s == ["done"] for s in _statuses(app, boxes).values()), timeout=60,
                   what="B's and C's runs")
        took = time.monotonic() - started
        assert worker.poll() is None
    finally:
        proxy.close()
        if worker is not None and worker.poll() is None:
            kill_worker(worker, app)
    for account_id, (user, password) in boxes.items():
        figures = assert_stored_once(app, account_id, server_uids(dovecot, user, password))
        assert figures["runs"] == ["done"]
        assert figures["stored"] == (BIG if account_id == big else SMALL)
    with app.app_context():
        assert db.session.scalar(select(MailAccount.last_run_status).where(MailAccount.id == big)) == "done"
        db.session.commit()
    print(f"redis {outage}: 1 running + 2 queued jobs, queue emptied by the restart, {len(enqueued)} re-enqueued "
          f"by the schedule; {BIG + 2 * SMALL} messages stored once; {took:.2f} s")


def test_a_run_on_another_host_is_not_taken_for_dead_when_redis_forgot_its_job(tmp_path, private_redis):
    """After a Redis restart the job of a run still working on another worker host is unknown: the run's
    fresh heartbeat keeps it alive (closing it would start a second scan of the mailbox beside it);
    once the heartbeat is older than the grace, it is closed as dead."""
    app, _ = shared_app(tmp_path, private_redis.url)
    with app.app_context():
        server = MailServer(name="elsewhere", imap_host="127.0.0.1", imap_port=1, imap_security="none",
                            smtp_host="127.0.0.1", smtp_port=1, smtp_security="none")
        account = MailAccount(name="A", server=server, login="a@corp.test", actions="create_email",
                              folders=[ScanFolder(name="INBOX")])
        db.session.add_all([server, account])
        db.session.flush()
        run = ScanRun(account_id=account.id, status="running", runner="another-worker-host:4242",
                      job_id=jobs.scan_job_id(account.id), started_at=utcnow(), heartbeat_at=utcnow())
        db.session.add(run)
        db.session.flush()
        account.running_run_id = run.id
        db.session.commit()
        private_redis.restart()  # the job's keys are gone

        assert liveness.close_dead_runs() == 0
        assert db.session.get(ScanRun, run.id).status == "running"
        assert schedule.enqueue_due(app) == []  # and no second scan of the mailbox is queued

        run.heartbeat_at = utcnow() - liveness.RQ_GONE_GRACE - timedelta(seconds=1)
        db.session.commit()
        assert liveness.close_dead_runs() == 1
        db.session.refresh(run)
        assert (run.status, run.message) == ("failed", liveness.RUN_DIED)
        db.session.refresh(account)
        assert account.running_run_id is None
