"""Race: one batch of messages sent to two mailboxes, scanned by two workers at the same moment.

Support and Sales each receive the same 240 messages (each copy with its own trace headers, as a
real delivery adds). Two ``python worker.py`` processes scan the two mailboxes together; a loopback
proxy in front of each mailbox holds its first body fetch until both scans are there, then lets
both go at the same instant, so both store the same messages in the same moments. On SQLite and on
PostgreSQL: every message is stored once, linked to both mailboxes, with one ticket, and each run's
log counts what the other stored as "also in".
"""

from __future__ import annotations

import json

import pytest
from rq import Queue
from rq.job import Job
from sqlalchemy import func, select

from app.extensions import db
from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.models import Contact, Email, EmailLink, EmailMailbox, MailAccount, MailSettings, ScanRun, Ticket
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    add_scanner,
    assert_stored_once,
    database_app,
    kill_worker,
    order_mail,
    server_uids,
    start_worker,
)

pytestmark = pytest.mark.integration

TOTAL, BATCH = 240, 40


def delivered(to: str, i: int) -> bytes:
    """Message ``i`` as mailbox ``to`` received it: its own Delivered-To and Received headers."""
    return (f"Delivered-To: {to}\r\nReceived: from mx.acme.test by mail.corp.test for <{to}>; "
            f"Mon, 02 Nov 2026 10:00:0{i % 10} +0000\r\n").encode() + order_mail(i)


@pytest.fixture(params=["sqlite", "postgresql"])
def shared(request, tmp_path, private_redis):
    with database_app(tmp_path, private_redis.url, request.param) as (app, worker_env, _url):
        yield app, worker_env


def _mailbox(app, dovecot, name: str, proxy: FetchBreakingProxy) -> tuple[int, tuple[str, str]]:
    login = dovecot.new_user(name.lower())
    dovecot.append_many(*login, "INBOX", [delivered(login[0], i) for i in range(1, TOTAL + 1)])
    account_id = add_scanner(app, dovecot, 0, batch_size=BATCH, port=proxy.port, login=login, name=name)
    with app.app_context():
        db.session.get(MailAccount, account_id).actions = "create_email,bind_email,create_ticket,open_ticket"
        db.session.commit()
    return account_id, login


def test_two_workers_store_a_message_of_two_mailboxes_once(shared, dovecot):
    app, worker_env = shared
    proxies = [FetchBreakingProxy((dovecot.host, dovecot.port)) for _ in range(2)]
    workers = []
    try:
        support, support_login = _mailbox(app, dovecot, "Support", proxies[0])
        sales, sales_login = _mailbox(app, dovecot, "Sales", proxies[1])
        with app.app_context():
            MailSettings.get().loop_max_messages = 0  # every customer writes many orders: no loop limit here
            db.session.add_all(Contact(first_name="Customer", last_name=str(n), email=f"customer{n}@acme.test")
                               for n in range(7))
            db.session.commit()
        for proxy in proxies:
            proxy.arm("stall", nth=1, nbytes=1)
        conn = redis_connection(app)
        queue = Queue(jobs.SCAN_QUEUE, connection=conn)
        for account_id in (support, sales):
            queue.enqueue_call(jobs.SCAN_JOB, args=(account_id, "schedule"), job_id=f"scan-{account_id}",
                               result_ttl=600)
        workers = [start_worker(worker_env, "--burst"), start_worker(worker_env, "--burst")]
        for proxy in proxies:
            assert proxy.triggered.wait(60), "a scan never reached its first fetch"
        for proxy in proxies:  # both scans go on together
            proxy.heal()
        for proc in workers:
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, out.decode(errors="replace")
        results = {a: Job.fetch(f"scan-{a}", connection=conn).return_value() for a in (support, sales)}
    finally:
        for proxy in proxies:
            proxy.close()
        for proc in workers:
            if proc.poll() is None:
                kill_worker(proc, app)

    assert all(r["status"] == "done" for r in results.values()), results
    # Each mailbox holds every message of its server once (stored from it or linked to it) ...
    for account_id, login in ((support, support_login), (sales, sales_login)):
        assert assert_stored_once(app, account_id, server_uids(dovecot, *login)) == {"stored": TOTAL,
                                                                                      "runs": ["done"]}
    with app.app_context():
        runs = {r.account_id: r for r in db.session.execute(
            select(ScanRun.account_id, ScanRun.created, ScanRun.also_in, ScanRun.also_in_details,
                   ScanRun.tickets_created))}
        emails = db.session.scalar(select(func.count(Email.id)))
        per_email = set(db.session.scalars(select(func.count(EmailMailbox.id)).group_by(EmailMailbox.email_id)))
        tickets = db.session.scalar(select(func.count(Ticket.id)))
        ticket_links = db.session.execute(select(EmailLink.email_id, func.count()).where(
            EmailLink.record_type == "ticket").group_by(EmailLink.email_id)).all()
        db.session.commit()
    # ... but stored once in all: each e-mail reached both, and opened one ticket.
    assert emails == TOTAL and per_email == {2}
    assert tickets == TOTAL and len(ticket_links) == TOTAL and {n for _, n in ticket_links} == {1}
    # What one run stored, the other counted as "also in" it.
    assert runs[support].created + runs[sales].created == TOTAL
    assert runs[support].also_in == runs[sales].created and runs[sales].also_in == runs[support].created
    for mine, other in ((support, sales), (sales, support)):
        details = json.loads(runs[mine].also_in_details)
        assert details == ({str(other): runs[mine].also_in} if runs[mine].also_in else {})
    assert runs[support].tickets_created + runs[sales].tickets_created == TOTAL
    print(f"two mailboxes at once: support stored {runs[support].created} (also in sales "
          f"{runs[support].also_in}), sales stored {runs[sales].created} (also in support {runs[sales].also_in})")
