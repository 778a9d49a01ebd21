"""The watcher against the real Dovecot and Redis: NOTIFY, IDLE, polling, the connection cap, and
scanners added, changed or disabled while it runs.

A proxy (``tests.watch_helpers.ImapProxy``) hides capabilities to make Dovecot a server without
NOTIFY, or without IDLE either, and counts the connections the watcher opens.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from app.crypto import encrypt_secret
from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.models import MailAccount, MailServer, MailSettings, ScanFolder
from app.scanning.run import run_scan
from app.watch import state
from tests.ci import unavailable
from tests.faults.redis_server import RedisServer
from tests.scan_helpers import KEY, add_scanner, close_app, order_mail, shared_app, wait_until
from tests.watch_helpers import FAST, ImapProxy, WatcherThread, forget_scan, queued_scan, wait_for_scan

pytestmark = pytest.mark.integration


@pytest.fixture
def watch_redis(tmp_path):
    """A private redis-server for one test."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"cannot start a private redis-server: {exc}")
    yield server
    server.stop()


@pytest.fixture
def app(tmp_path, watch_redis):
    app, _env = shared_app(tmp_path, watch_redis.url)
    yield app
    close_app(app)


def _point_at(app, account_id: int, port: int, *, folders: tuple[str, ...] | None = None,
              max_connections: int | None = None) -> None:
    with app.app_context():
        account = db.session.get(MailAccount, account_id)
        account.server.imap_port = port
        if max_connections is not None:
            account.server.max_connections = max_connections
        if folders is not None:
            have = {f.name for f in account.folders}
            account.folders += [ScanFolder(name=f) for f in folders if f not in have]
        db.session.commit()


def _scanned_up_to_date(app, account_id: int, uidnext: dict[str, int]) -> None:
    """Pretend a scan stored everything there is, so the watcher's first look finds nothing new."""
    with app.app_context():
        for folder in db.session.scalars(select(ScanFolder).where(ScanFolder.account_id == account_id)):
            folder.last_uid = uidnext.get(folder.name, 1) - 1
        db.session.commit()


def _stored_status(dovecot, login, password, folder="INBOX") -> int:
    conn = dovecot.connect(login, password)
    try:
        typ, data = conn.status(f'"{folder}"', "(UIDNEXT)")
        return int(data[0].split(b"UIDNEXT ")[1].rstrip(b")"))
    finally:
        conn.logout()


def test_notify_enqueues_a_scan_the_moment_mail_arrives_in_any_folder(app, dovecot):
    login, password = dovecot.new_user("notify")
    dovecot.append_many(login, password, "Sent", [order_mail(0)])
    account_id = add_scanner(app, dovecot, 3, login=(login, password))
    _point_at(app, account_id, dovecot.port, folders=("INBOX", "Sent"))
    _scanned_up_to_date(app, account_id, {"INBOX": 4, "Sent": 2})
    with WatcherThread(app) as watcher:
        wait_until(lambda: watcher.state(account_id) == "notify", timeout=15, what="the NOTIFY watch")
        assert queued_scan(app, account_id) is None  # nothing new at the first look
        for folder in ("INBOX", "Sent"):
            sent = time.time()
            dovecot.append(login, password, folder, order_mail(10))
            meta = wait_for_scan(app, account_id, timeout=5)
            assert meta["event_at"] >= sent - 1
            print(f"NOTIFY {folder}: scan queued {meta['event_at'] - sent:.2f} s after the APPEND")
            forget_scan(app, account_id)
        stored = state.read_states(redis_connection(app), [account_id])[account_id]
        assert stored.state == "notify" and stored.connections == 1 and stored.last_event_at


def test_idle_per_folder_within_the_cap_and_the_rest_polled(app, dovecot):
    """No NOTIFY: an IDLE connection per folder up to the cap less one; the third folder is polled."""
    proxy = ImapProxy((dovecot.host, dovecot.port), hide=("NOTIFY",))
    try:
        login, password = dovecot.new_user("idle")
        for folder in ("Sent", "Archive"):
            dovecot.append_many(login, password, folder, [order_mail(0)])
        account_id = add_scanner(app, dovecot, 1, login=(login, password))
        _point_at(app, account_id, proxy.port, folders=("INBOX", "Sent", "Archive"), max_connections=3)
        _scanned_up_to_date(app, account_id, {"INBOX": 2, "Sent": 2, "Archive": 2})
        # IDLE ended and started again every second (in production every 25 minutes).
        settings = type(FAST)(**{**vars(FAST), "poll_override": 1.0, "idle_renew": 1.0})
        with WatcherThread(app, settings) as watcher:
            wait_until(lambda: watcher.state(account_id) == "idle", timeout=15, what="the IDLE watch")
            assert watcher.watcher.states[account_id].connections == 2
            time.sleep(2.5)  # a few IDLE renewals
            for folder in ("INBOX", "Sent", "Archive"):
                dovecot.append(login, password, folder, order_mail(20))
                wait_for_scan(app, account_id, timeout=5)
                forget_scan(app, account_id)
            assert proxy.open == 2, "two connections for three folders (cap 3, one left for the scan)"
            assert proxy.connections == 2, "polling reuses the connection: no new login per cycle"
            assert watcher.watcher.reconnects == 0, "renewing IDLE keeps the connection"
    finally:
        proxy.close()


def test_polling_over_one_kept_connection_when_the_server_has_no_idle(app, dovecot):
    proxy = ImapProxy((dovecot.host, dovecot.port), hide=("NOTIFY", "IDLE"))
    try:
        login, password = dovecot.new_user("poll")
        account_id = add_scanner(app, dovecot, 2, login=(login, password))
        _point_at(app, account_id, proxy.port)
        _scanned_up_to_date(app, account_id, {"INBOX": 3})
        settings = type(FAST)(**{**vars(FAST), "poll_override": 0.5})
        with WatcherThread(app, settings) as watcher:
            wait_until(lambda: watcher.state(account_id) == "polling", timeout=15, what="the polling watch")
            time.sleep(2)  # a few polling cycles without mail
            assert queued_scan(app, account_id) is None
            dovecot.append(login, password, "INBOX", order_mail(30))
            wait_for_scan(app, account_id, timeout=5)
            assert proxy.connections == 1, "every cycle asked STATUS over the same connection"
    finally:
        proxy.close()


def test_mail_that_came_before_the_watch_started_is_reported_at_the_first_look(app, dovecot):
    account_id = add_scanner(app, dovecot, 5)  # never scanned: last UID 0
    with WatcherThread(app):
        meta = wait_for_scan(app, account_id, timeout=15)
        assert meta["trigger"] == "watch"


def test_scanners_added_changed_and_disabled_are_picked_up_within_seconds(app, dovecot):
    with WatcherThread(app) as watcher:
        login, password = dovecot.new_user("later")
        added = time.monotonic()
        account_id = add_scanner(app, dovecot, 0, login=(login, password))
        wait_until(lambda: watcher.state(account_id) == "notify", timeout=10, what="the new scanner's watch")
        print(f"a new scanner is watched {time.monotonic() - added:.2f} s after it was saved")
        first = watcher.watcher.watches[account_id]

        # A new password means a new login; the old watch is replaced.
        new_password = "changed-" + password
        dovecot.add_user(login, new_password)
        with app.app_context():
            db.session.get(MailAccount, account_id).password_enc = encrypt_secret(KEY, new_password)
            db.session.commit()
        wait_until(lambda: watcher.watcher.watches.get(account_id) not in (None, first)
                   and watcher.state(account_id) == "notify", timeout=10, what="the watch with the new password")
        dovecot.append(login, new_password, "INBOX", order_mail(40))
        wait_for_scan(app, account_id, timeout=5)

        with app.app_context():
            db.session.get(MailAccount, account_id).enabled = False
            db.session.commit()
        wait_until(lambda: account_id not in watcher.watcher.watches, timeout=10, what="the watch to stop")
        wait_until(lambda: not state.read_states(redis_connection(app), [account_id]), timeout=10,
                   what="the state to be cleared")


def test_a_refused_login_is_reported_and_retried_slowly(app, dovecot):
    account_id = add_scanner(app, dovecot, 0)
    with app.app_context():
        db.session.get(MailAccount, account_id).password_enc = encrypt_secret(KEY, "wrong")
        db.session.commit()
    with WatcherThread(app) as watcher:
        wait_until(lambda: watcher.state(account_id) == "reconnecting", timeout=10, what="the refused login")
        reason = watcher.watcher.states[account_id].reason
        assert "refused the login" in reason and "wrong" not in reason
        time.sleep(1.5)
        assert watcher.watcher.reconnects == 1, "a refused login waits long before the next try"
        assert not state.watched_ids(redis_connection(app), [account_id]), "the schedule polls it meanwhile"


def test_server_settings_are_read_for_every_scanner(app, dovecot):
    """A second server with its own cap: each scanner's target carries its server's settings."""
    from app.watch.targets import load_targets

    first = add_scanner(app, dovecot, 0)
    second = add_scanner(app, dovecot, 0)
    with app.app_context():
        db.session.get(MailAccount, second).server.max_connections = 15
        db.session.execute(select(MailServer)).all()
        db.session.commit()
    found = load_targets(app).by_id
    assert found[first].watch_connections == 9 and found[second].watch_connections == 14


def test_the_watch_page_and_metrics_show_each_scanners_watch(app, dovecot):
    from tests import factories
    from tests.conftest import AuthActions

    app.config["METRICS_TOKEN"] = "watch-metrics-token"
    login, password = dovecot.new_user("page")
    watched = add_scanner(app, dovecot, 3, login=(login, password), name="Watched inbox")
    refused = add_scanner(app, dovecot, 0, name="Wrong password")
    with app.app_context():
        # A run with a budget of 2 leaves 1 of the 3 messages: the backlog the page shows.
        MailSettings.get().max_per_run = 2
        db.session.commit()
        assert run_scan(watched).backlog == 1
        db.session.get(MailAccount, refused).password_enc = encrypt_secret(KEY, "wrong")
        factories.user(username="admin", admin=True)
        db.session.commit()
    client = app.test_client()
    AuthActions(client).login()
    with WatcherThread(app) as watcher:
        wait_until(lambda: watcher.state(watched) == "notify" and watcher.state(refused) == "reconnecting",
                   timeout=15, what="both watches")
        dovecot.append(login, password, "INBOX", order_mail(1))
        wait_for_scan(app, watched, timeout=5)
        conn = redis_connection(app)
        wait_until(lambda: (state.read_states(conn, [watched]).get(watched) or state.WatchState("", "")
                            ).last_event_at, timeout=5, what="the event in Redis")
        # The refused login is reported after Dovecot's delay on failed logins: wait for it in Redis too.
        wait_until(lambda: "refused the login" in ((state.read_states(conn, [refused]).get(refused)
                                                    or state.WatchState("", "")).reason or ""),
                   timeout=10, what="the refused login in Redis")
        page = client.get("/admin/watch").get_data(as_text=True)
        metrics = client.get("/metrics", headers={"Authorization": "Bearer watch-metrics-token"}).get_data(
            as_text=True)
    assert f'id="watch-{watched}" data-state="notify"' in page
    assert f'id="watch-{refused}" data-state="reconnecting"' in page and "refused the login" in page
    assert watcher.watcher.id in page
    row = page.split(f'id="watch-{watched}"')[1].split("</tr>")[0]
    assert "<td>1</td>" in row, "the backlog the last run left"
    lines = set(metrics.splitlines())
    assert "cm_watchers 1.0" in lines
    assert f'cm_watch_connections{{watcher="{watcher.watcher.id}"}} 1.0' in lines
    assert 'cm_watch_scanners{state="notify"} 1.0' in lines and 'cm_watch_scanners{state="reconnecting"} 1.0' in lines
    assert any(line.startswith("cm_watch_delivery_latency_seconds_count") for line in lines)


def test_a_watched_message_is_stored_and_its_delivery_latency_recorded(tmp_path, watch_redis, dovecot):
    from app.watch import telemetry
    from tests.scan_helpers import count_emails, run_burst

    (tmp_path / "latency").mkdir()
    app, worker_env = shared_app(tmp_path / "latency", watch_redis.url)
    try:
        login, password = dovecot.new_user("latency")
        account_id = add_scanner(app, dovecot, 0, login=(login, password))
        with WatcherThread(app) as watcher:
            wait_until(lambda: watcher.state(account_id) == "notify", timeout=15, what="the watch")
            dovecot.append(login, password, "INBOX", order_mail(5))
            wait_for_scan(app, account_id, timeout=5)
        run_burst(worker_env)
        assert count_emails(app, account_id) == 1
        buckets, count, total = telemetry.read_latency(redis_connection(app))
        assert count == 1 and total > 0 and buckets[-1][1] == 1
    finally:
        close_app(app)
