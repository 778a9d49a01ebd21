"""Backlogs at engine speed, and fair: real RQ workers (``python worker.py``), real Dovecot, a private Redis.

- a run that stops at "Max per run" is continued at once, and the mailbox ends stored exactly once;
- two mailboxes with backlogs take turns (the continuation goes to the back of the backlog queue);
- a new message in a quiet mailbox is stored right after the run in progress, while backlogs wait;
- "Stop" ends a run within the batch in flight, and nothing more is fetched;
- a slow server gives the worker back after its time budget, so another mailbox's scan runs.

Orderings are asserted on the runs' ids (the order they started in), never on timings.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.jobqueue import jobs
from app.models import MailAccount, MailSettings, ScanRun
from app.services import scans
from tests import factories
from tests.ci import unavailable
from tests.faults.redis_server import RedisServer
from tests.faults.tcp_proxy import FetchBreakingProxy
from tests.scan_helpers import (
    add_scanner,
    assert_stored_once,
    close_app,
    count_emails,
    database_app,
    kill_worker,
    order_mail,
    run_burst,
    server_uids,
    shared_app,
    start_worker,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_server(tmp_path):
    """A private redis-server for one test."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"cannot start a private redis-server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path, dovecot, redis_server):
    """An app and its workers' environment on a file SQLite database and a private redis-server."""
    app, worker_env = shared_app(tmp_path, redis_server.url)
    try:
        yield app, worker_env
    finally:
        close_app(app)


def _budget(app, max_per_run: int, batch_size: int) -> None:
    with app.app_context():
        settings = MailSettings.get()
        settings.max_per_run, settings.batch_size = max_per_run, batch_size
        db.session.commit()


def _runs(app, account_id: int | None = None) -> list[ScanRun]:
    with app.app_context():
        query = select(ScanRun).order_by(ScanRun.id)
        if account_id is not None:
            query = query.where(ScanRun.account_id == account_id)
        runs = list(db.session.scalars(query))
        db.session.expunge_all()
        db.session.commit()
        return runs


def _backlog(app, account_id: int) -> int | None:
    with app.app_context():
        value = db.session.scalar(select(MailAccount.backlog).where(MailAccount.id == account_id))
        db.session.commit()
        return value


def _enqueue(app, account_id: int, trigger: str = "manual") -> str:
    with app.app_context():
        return jobs.submit_scan_job(app, account_id, trigger)[1]


@pytest.mark.parametrize(("backend", "in_place"), [("sqlite", True), ("sqlite", False), ("postgresql", True),
                                                   ("postgresql", False)])
def test_a_run_cut_at_its_budget_is_continued_at_once_and_stores_everything_once(tmp_path, redis_server, dovecot,
                                                                                 backend, in_place):
    with database_app(tmp_path, redis_server.url, backend) as (app, worker_env, _url):
        _continued_at_once(app, worker_env, dovecot, in_place)


def _continued_at_once(app, worker_env, dovecot, in_place: bool) -> None:
    login, password = dovecot.new_user("backlog")
    account_id = add_scanner(app, dovecot, 700, login=(login, password))
    _budget(app, max_per_run=150, batch_size=50)
    assert _enqueue(app, account_id) == "queued"
    run_burst({**worker_env, "SCAN_CONTINUE_IN_PLACE": "1" if in_place else "0"})
    runs = _runs(app, account_id)
    # One request, five runs of at most 150 messages, the later ones continuations of the first.
    assert [r.created for r in runs] == [150, 150, 150, 150, 100]
    assert [r.status for r in runs] == ["done"] * 5
    assert [r.trigger for r in runs] == ["manual"] + ["backlog"] * 4
    if in_place:
        assert {r.job_id for r in runs} == {f"scan-{account_id}"}, "continued inside the same job"
    else:
        # Each continuation is a job of its own at the back of the backlog queue, under the scanner's other id.
        assert [r.job_id for r in runs] == [f"scan-{account_id}", f"backlog-{account_id}"] * 2 + [f"scan-{account_id}"]
    assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    assert _backlog(app, account_id) == 0


def test_two_mailboxes_with_backlogs_take_turns(env, dovecot):
    app, worker_env = env
    first = add_scanner(app, dovecot, 400, name="First")
    second = add_scanner(app, dovecot, 400, name="Second", first=100_001)  # its own messages
    _budget(app, max_per_run=100, batch_size=50)
    _enqueue(app, first)
    _enqueue(app, second)
    run_burst(worker_env)
    order = [r.account_id for r in _runs(app)]
    assert order == [first, second] * 4, "each continuation waits behind the other mailbox's"
    assert count_emails(app, first) == count_emails(app, second) == 400


def test_new_mail_in_a_quiet_mailbox_is_stored_while_backlogs_run(env, dovecot):
    app, worker_env = env
    busy = [add_scanner(app, dovecot, 1500, name=f"Busy {i}", first=1 + i * 100_000) for i in range(2)]
    q_login, q_password = dovecot.new_user("quiet")
    quiet = add_scanner(app, dovecot, 0, login=(q_login, q_password), name="Quiet")
    _budget(app, max_per_run=100, batch_size=50)
    for account_id in busy:
        _enqueue(app, account_id)
    worker = start_worker(worker_env, "--no-schedule")
    try:
        wait_until(lambda: len([r for r in _runs(app) if r.status == "done"]) >= 3, timeout=60,
                   what="the backlogs under way")
        dovecot.append(q_login, q_password, "INBOX", order_mail(99_999))
        started_before = max(r.id for r in _runs(app))  # the run in progress when the mail came (or the last)
        assert _enqueue(app, quiet, trigger="watch") == "queued"
        # Allowed before it: the run in progress, and one that started between reading the ids and queueing.
        wait_until(lambda: count_emails(app, quiet) == 1, timeout=60, what="the quiet mailbox's message")
        quiet_run = _runs(app, quiet)[-1]
        # The quiet mailbox's scan came right after the run that was in progress: no backlog run jumped it.
        assert quiet_run.id <= started_before + 2, [(r.id, r.account_id) for r in _runs(app)]
        assert any(_backlog(app, account_id) for account_id in busy), "the backlogs were still being worked"
        wait_until(lambda: sum(count_emails(app, a) for a in busy) == 3000, timeout=120, what="the backlogs done")
        # The last run records its (empty) backlog as it ends, just after its last batch is stored.
        wait_until(lambda: [_backlog(app, a) for a in busy] == [0, 0], timeout=30, what="no backlog left")
    finally:
        kill_worker(worker, app)


def test_stop_ends_the_run_within_the_batch_in_flight_and_fetches_nothing_more(env, dovecot):
    app, worker_env = env
    login, password = dovecot.new_user("stop")
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    account_id = add_scanner(app, dovecot, 400, login=(login, password), port=proxy.port)
    _budget(app, max_per_run=1000, batch_size=20)
    with app.app_context():
        admin = factories.user(username="stopper", admin=True)
        db.session.commit()
        admin_id = admin.id
    proxy.arm("stall", nth=3, nbytes=100)  # the third batch's answer stops after 100 bytes
    _enqueue(app, account_id)
    worker = start_worker(worker_env, "--no-schedule")
    try:
        assert proxy.triggered.wait(60), "the third batch was never fetched"
        run_id = _runs(app, account_id)[-1].id
        with app.app_context():
            scans.request_stop(run_id, admin_id)
        wait_until(lambda: _runs(app, account_id)[-1].status != "running", timeout=20, what="the run to stop")
        assert not proxy.released.is_set(), "the run ended while the server still held the batch"
        run = _runs(app, account_id)[-1]
        assert run.status == "stopped"
        # Two batches stored; the third (in flight when Stop came) was cut; no fetch after it.
        assert (run.downloaded, count_emails(app, account_id)) == (40, 40)
        assert (proxy.fetches, proxy.fetched_uids) == (3, 60)
    finally:
        kill_worker(worker, app)
        proxy.heal()
    # The next run carries on from there: everything stored once.
    _enqueue(app, account_id)
    run_burst(worker_env)
    assert_stored_once(app, account_id, server_uids(dovecot, login, password))
    proxy.close()


def test_a_slow_server_delays_only_its_own_mailbox(env, dovecot):
    app, worker_env = env
    s_login, s_password = dovecot.new_user("slow")
    proxy = FetchBreakingProxy((dovecot.host, dovecot.port))
    proxy.delay = 0.4  # every batch of the slow mailbox takes 0.4 s more
    slow = add_scanner(app, dovecot, 300, login=(s_login, s_password), port=proxy.port, name="Slow")
    f_login, f_password = dovecot.new_user("fast")
    fast = add_scanner(app, dovecot, 5, login=(f_login, f_password), name="Fast", first=100_001)
    _budget(app, max_per_run=100_000, batch_size=10)
    _enqueue(app, slow)
    worker = start_worker({**worker_env, "SCAN_RUN_SECONDS": "1"}, "--no-schedule")
    try:
        wait_until(lambda: count_emails(app, slow) >= 10, timeout=60, what="the slow mailbox under way")
        started_before = max(r.id for r in _runs(app))
        _enqueue(app, fast)
        # Allowed before it: the run in progress, and one that started between reading the ids and queueing.
        wait_until(lambda: count_emails(app, fast) == 5, timeout=60, what="the fast mailbox's scan")
        fast_run = _runs(app, fast)[-1]
        slow_runs = _runs(app, slow)
        # The slow mailbox's run gave the worker back at its time budget; the fast scan came next.
        assert fast_run.id <= started_before + 2, [(r.id, r.account_id) for r in _runs(app)]
        assert slow_runs[0].status == "done" and 0 < slow_runs[0].downloaded < 300
        assert any(r.id > fast_run.id for r in _runs(app, slow)) or _backlog(app, slow), \
            "the slow mailbox still had mail to read after the fast scan"
        wait_until(lambda: count_emails(app, slow) == 300, timeout=120, what="the slow mailbox done")
    finally:
        kill_worker(worker, app)
        proxy.close()
    assert_stored_once(app, slow, server_uids(dovecot, s_login, s_password))
    assert_stored_once(app, fast, server_uids(dovecot, f_login, f_password))
    with app.app_context():
        assert db.session.scalar(select(func.count(ScanRun.id)).where(ScanRun.account_id == slow)) > 1


def test_a_worker_asked_to_stop_hands_the_backlog_to_the_queue(env, dovecot):
    import signal

    from rq import Queue

    from app.jobqueue.connection import redis_connection

    app, worker_env = env
    login, password = dovecot.new_user("shutdown")
    account_id = add_scanner(app, dovecot, 2000, login=(login, password))
    _budget(app, max_per_run=50, batch_size=10)
    _enqueue(app, account_id)
    worker = start_worker(worker_env, "--no-schedule")
    try:
        wait_until(lambda: len(_runs(app, account_id)) >= 3, timeout=60, what="the backlog continued in place")
        worker.send_signal(signal.SIGTERM)  # a warm shutdown: the worker waits for its job
        worker.wait(60)
    finally:
        kill_worker(worker, app)
    # The job stopped continuing in place and queued the rest instead of keeping the stopping worker busy.
    assert count_emails(app, account_id) < 2000
    assert Queue(jobs.BACKLOG_QUEUE, connection=redis_connection(app)).count == 1
    run_burst(worker_env)
    assert_stored_once(app, account_id, server_uids(dovecot, login, password))
