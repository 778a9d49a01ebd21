"""Faults around the watcher, against the real Dovecot and Redis.

- Dovecot crashes and comes back: every watch is back within 30 s, and a message delivered while
  it was down (written into the Maildir, as the delivery agent would) is stored.
- Redis goes down: the watcher keeps its IMAP connections, keeps the scan it owes, and enqueues
  it once Redis is back.
- The watcher is killed with SIGKILL: its watch states run out and the worker's schedule polls the
  scanner again at the check frequency, so the mail is still stored.
- A server (or a NAT box) that drops connections silent for two seconds: no message is missed,
  and the reconnects slow down instead of looping.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest

from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.models import MailAccount, MailSettings
from app.models.base import utcnow
from app.watch import state
from tests.scan_helpers import (
    ROOT,
    add_scanner,
    assert_stored_once,
    count_emails,
    kill_worker,
    order_mail,
    run_burst,
    server_uids,
    shared_app,
    start_worker,
    wait_until,
)
from tests.services import nobody_group
from tests.watch_helpers import FAST, ImapProxy, WatcherThread, forget_scan, wait_for_scan

pytestmark = pytest.mark.integration


def _mailbox_free(app, account_id: int) -> bool:
    with app.app_context():
        free = db.session.get(MailAccount, account_id).running_run_id is None
        db.session.commit()
    return free


def _deliver_to_maildir(maildir, raw: bytes) -> None:
    """Put a message into Maildir/new as a delivery agent does while the IMAP server is down."""
    new = maildir / "new"
    new.mkdir(parents=True, exist_ok=True)
    path = new / f"{int(time.time())}.{uuid.uuid4().hex}.cm-test"
    path.write_bytes(raw)
    if os.geteuid() == 0:
        shutil.chown(path, "nobody", nobody_group())


def test_dovecot_crash_every_watch_back_within_30_s_and_mail_from_the_outage_is_stored(
        tmp_path, private_dovecot, private_redis):
    app, worker_env = shared_app(tmp_path, private_redis.url)
    dv = private_dovecot.handle
    accounts = []
    for _ in range(3):
        login, password = dv.new_user("crash")
        account_id = add_scanner(app, dv, 2, login=(login, password))
        accounts.append((account_id, login, password))
    run_burst(worker_env)  # everything there is, stored
    with WatcherThread(app) as watcher:
        ids = [a for a, _, _ in accounts]
        wait_until(lambda: all(watcher.state(a) == "notify" for a in ids), timeout=20, what="the watches")
        private_dovecot.kill()
        down = time.monotonic()
        account_id, login, _password = accounts[0]
        local, _, domain = login.partition("@")
        _deliver_to_maildir(private_dovecot.mail / domain / local / "Maildir", order_mail(900))
        wait_until(lambda: all(watcher.state(a) == "reconnecting" for a in ids), timeout=20,
                   what="the watches to notice")
        time.sleep(3)  # down a while: connection attempts are refused meanwhile
        private_dovecot.start()
        started = time.monotonic()
        wait_until(lambda: all(watcher.state(a) == "notify" for a in ids), timeout=30,
                   what="every watch back within 30 s")
        back = time.monotonic() - started
        wait_for_scan(app, account_id, timeout=10)
    run_burst(worker_env)
    for account_id, login, password in accounts:
        assert_stored_once(app, account_id, server_uids(dv, login, password))
    assert count_emails(app, accounts[0][0]) == 3
    print(f"Dovecot down {started - down:.1f} s; every watch back {back:.1f} s after it started again")


def test_redis_down_the_watcher_keeps_its_connections_and_enqueues_once_redis_is_back(
        tmp_path, dovecot, private_redis):
    app, _env = shared_app(tmp_path, private_redis.url)
    proxy = ImapProxy((dovecot.host, dovecot.port))
    try:
        login, password = dovecot.new_user("redisdown")
        account_id = add_scanner(app, dovecot, 0, login=(login, password), port=proxy.port)
        with WatcherThread(app) as thread:
            watcher = thread.watcher
            wait_until(lambda: thread.state(account_id) == "notify", timeout=15, what="the watch")
            watch, opened = watcher.watches[account_id], proxy.connections
            private_redis.stop()
            dovecot.append(login, password, "INBOX", order_mail(1))
            wait_until(lambda: account_id in watcher.owed and not watcher.redis_up, timeout=10,
                       what="the event while Redis is down")
            time.sleep(3 * FAST.heartbeat + FAST.lease_ttl)  # heartbeats fail, leases would run out
            assert watcher.watches.get(account_id) is watch and thread.state(account_id) == "notify"
            assert proxy.connections == opened and proxy.open == 1, "no connection dropped or opened again"
            assert account_id in watcher.held, "the lease is kept as it is"
            private_redis.start()
            meta = wait_for_scan(app, account_id, timeout=15)
            assert account_id not in watcher.owed
            assert meta["event_at"] < time.time() - FAST.lease_ttl, "the event's own time is kept"
    finally:
        proxy.close()


def test_watcher_killed_with_sigkill_polling_still_stores_the_mail(tmp_path, dovecot, private_redis):
    app, worker_env = shared_app(tmp_path, private_redis.url)
    login, password = dovecot.new_user("killed")
    account_id = add_scanner(app, dovecot, 0, login=(login, password))
    with app.app_context():
        MailSettings.get().check_frequency_minutes = 1
        db.session.get(MailAccount, account_id).last_run_at = utcnow() - timedelta(minutes=2)
        db.session.commit()
    env = {**worker_env, "WATCH_HEARTBEAT_SECONDS": "1", "WATCH_LEASE_SECONDS": "5"}
    watcher = subprocess.Popen([sys.executable, str(ROOT / "watcher.py")], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    worker = None
    try:
        conn = redis_connection(app)
        wait_until(lambda: state.watched_ids(conn, [account_id]), timeout=30, what="the watcher's watch")
        worker = start_worker(worker_env)  # with the schedule: a watched scanner is not due for an hour
        time.sleep(3)
        assert count_emails(app) == 0
        os.killpg(watcher.pid, signal.SIGKILL)
        watcher.wait(10)
        killed = time.monotonic()
        dovecot.append(login, password, "INBOX", order_mail(7))
        wait_until(lambda: count_emails(app, account_id) == 1, timeout=120, what="the schedule's scan")
        wait_until(lambda: _mailbox_free(app, account_id), timeout=30, what="the run to end")
        print(f"watcher killed: the message was stored by polling {time.monotonic() - killed:.1f} s later")
    finally:
        if watcher.poll() is None:
            os.killpg(watcher.pid, signal.SIGKILL)
        if worker is not None:
            kill_worker(worker, app)
    assert_stored_once(app, account_id, server_uids(dovecot, login, password))


def test_a_server_that_drops_silent_connections_loses_no_mail_and_causes_no_busy_loop(tmp_path, dovecot,
                                                                                      private_redis):
    app, _env = shared_app(tmp_path, private_redis.url)
    proxy = ImapProxy((dovecot.host, dovecot.port), cut_silent_after=2.0)
    settings = type(FAST)(**{**vars(FAST), "reconnect_longest": 8.0, "healthy_after": 30.0})
    try:
        login, password = dovecot.new_user("dropper")
        account_id = add_scanner(app, dovecot, 0, login=(login, password), port=proxy.port)
        with WatcherThread(app, settings) as thread:
            started = time.monotonic()
            for i in range(6):
                time.sleep(2.5 + (i % 3))  # sometimes while connected, sometimes while away
                dovecot.append(login, password, "INBOX", order_mail(100 + i))
                wait_for_scan(app, account_id, timeout=20)
                forget_scan(app, account_id)
            took = time.monotonic() - started
            reconnects = thread.watcher.reconnects
    finally:
        proxy.close()
    assert proxy.cuts >= 3, "the proxy did cut the silent connections"
    # Connections live 2 s; without the growing back-off that is one reconnect every ~2 s.
    assert reconnects <= took / 3, f"{reconnects} reconnects in {took:.0f} s"
    print(f"silent connections cut after 2 s: 6 of 6 messages queued, {reconnects} reconnects in {took:.0f} s")
