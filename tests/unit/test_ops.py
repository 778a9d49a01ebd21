"""Operations without real services: /healthz, /metrics, the Queues page without Redis, logs, audit page."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest

from app.extensions import db
from app.logging_setup import configure_logging, redact
from app.models import AuditEntry, AutologinEvent, MailAccount, MailServer, ScanRun
from app.models.base import utcnow
from app.services import audit
from tests import factories
from tests.rq_job import run_as_rq_job

DEAD_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def redis_mode(app, monkeypatch):
    """The app in "redis" queue mode with a Redis that refuses connections."""
    monkeypatch.setitem(app.config, "QUEUE_MODE", "redis")
    monkeypatch.setitem(app.config, "REDIS_URL", DEAD_REDIS)
    return app


@pytest.fixture
def json_logs(app):
    """Switch the app's log lines to JSON for one test, then back."""
    old = app.config.get("LOG_FORMAT")
    app.config["LOG_FORMAT"] = "json"
    configure_logging(app)
    yield
    app.config["LOG_FORMAT"] = old
    configure_logging(app)


def _account(name="Sales box") -> MailAccount:
    server = MailServer(name=f"srv-{name}", imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                        smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
    account = MailAccount(name=name, server=server, login="sales@corp.test")
    db.session.add_all([server, account])
    db.session.commit()
    return account


def _run(account, status, seconds=None, **counts) -> ScanRun:
    started = utcnow() - timedelta(hours=1)
    run = ScanRun(account_id=account.id, status=status, started_at=started,
                  finished_at=started + timedelta(seconds=seconds) if seconds is not None else None, **counts)
    db.session.add(run)
    db.session.commit()
    return run


# ---------------------------------------------------------------- /healthz

def test_healthz_inline_is_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "skipped"}


def test_healthz_dead_redis_is_503(redis_mode, client):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"database": "ok", "redis": "error"}


# ---------------------------------------------------------------- /metrics

def test_metrics_404_without_token_configured(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", None)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 404


def test_metrics_401_on_missing_or_wrong_token(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-token-123")
    assert client.get("/metrics").status_code == 401
    wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-124"})
    assert wrong.status_code == 401
    assert "WWW-Authenticate" in wrong.headers
    assert client.get("/metrics", headers={"Authorization": "Basic scrape-token-123"}).status_code == 401


def test_metrics_counts_come_from_scan_runs(app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-token-123")
    account = _account()
    _run(account, "done", seconds=3, downloaded=10, created=9, bound=4, tickets_created=2, ignored=1)
    _run(account, "done", seconds=40, downloaded=5, created=5, bound=1, tickets_reopened=1, throttled=4)
    _run(account, "failed", seconds=2, errors=3)
    _run(account, "running", downloaded=7)
    db.session.add_all([AutologinEvent(outcome="refused: no grant"), AutologinEvent(outcome="refused: throttled"),
                        AutologinEvent(outcome="redeemed", account_id=account.id)])
    db.session.commit()
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    lines = set(response.get_data(as_text=True).splitlines())
    for expected in (
        'cm_scan_runs{status="done"} 2.0',
        'cm_scan_runs{status="failed"} 1.0',
        'cm_scan_runs{status="running"} 1.0',
        'cm_scan_runs{status="stopped"} 0.0',
        "cm_messages_downloaded_total 22.0",
        "cm_emails_created_total 14.0",
        "cm_emails_bound_total 5.0",
        "cm_tickets_created_total 2.0",
        "cm_tickets_reopened_total 1.0",
        "cm_messages_ignored_total 1.0",
        "cm_message_errors_total 3.0",
        'cm_messages_held_total{reason="throttled"} 4.0',
        'cm_messages_held_total{reason="spam"} 0.0',
        'cm_scan_run_duration_seconds_bucket{le="5.0"} 2.0',
        'cm_scan_run_duration_seconds_bucket{le="60.0"} 3.0',
        'cm_scan_run_duration_seconds_bucket{le="+Inf"} 3.0',
        "cm_scan_run_duration_seconds_count 3.0",
        "cm_scan_run_duration_seconds_sum 45.0",
        'cm_scanners{state="active"} 1.0',
        "cm_scanners_blocked 0.0",
        "cm_queue_inline 1.0",
        'cm_handoffs_total{outcome="refused"} 2.0',
        'cm_handoffs_total{outcome="redeemed"} 1.0',
        f'cm_scanner_last_success_timestamp_seconds{{account_id="{account.id}",scanner="Sales box"}} 0.0',
        "# TYPE cm_scan_run_duration_seconds histogram",
    ):
        assert expected in lines, expected


def test_metrics_with_dead_redis_reports_it(redis_mode, client, monkeypatch):
    monkeypatch.setitem(redis_mode.config, "METRICS_TOKEN", "scrape-token-123")
    account = _account()
    account.health = "blocked"
    db.session.commit()
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "cm_redis_up 0.0" in body.splitlines()
    assert "cm_scanners_blocked 1.0" in body.splitlines()


# ---------------------------------------------------------------- Queues page without Redis

def test_queues_page_says_redis_is_unreachable(redis_mode, client, admin, auth):
    auth.login("admin")
    response = client.get("/admin/queues")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Redis at 127.0.0.1:1/0 is not reachable" in page
    assert "Traceback" not in page


def test_queues_page_inline_mode_says_in_process(app, client, admin, auth):
    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    assert "The queue runs in-process" in page


def test_retry_with_dead_redis_flashes_plain_words(redis_mode, client, admin, auth):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/queues"))
    response = client.post("/admin/queues/jobs/scan-1/retry", data={"csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200
    assert "is not reachable" in response.get_data(as_text=True)


def test_queue_actions_need_csrf(redis_mode, client, admin, auth):
    auth.login("admin")
    assert factories.csrf_refused(client.post("/admin/queues/jobs/scan-1/cancel"))


def test_queues_and_audit_pages_are_for_admins_only(app, client, user, auth):
    auth.login("alice")
    assert client.get("/admin/queues").status_code == 403
    assert client.get("/admin/audit").status_code == 403


# ---------------------------------------------------------------- logs

def test_json_log_lines_carry_request_id(app, client, json_logs, capsys):
    capsys.readouterr()
    response = client.get("/login", headers={"X-Request-ID": "req-abc-123"})
    assert response.headers["X-Request-ID"] == "req-abc-123"
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    access = [entry for entry in lines if entry["logger"] == "app.request"]
    assert access, lines
    entry = access[-1]
    assert entry["request_id"] == "req-abc-123"
    assert entry["path"] == "/login" and entry["status"] == 200
    assert {"time", "level", "logger", "message", "job_id"} <= set(entry)


def test_insane_request_id_is_replaced(client):
    response = client.get("/login", headers={"X-Request-ID": "bad id; drop table"})
    rid = response.headers["X-Request-ID"]
    assert rid != "bad id; drop table"
    assert len(rid) == 32 and rid.isalnum()


def test_job_id_is_stamped_on_log_lines(app, json_logs, capsys):
    capsys.readouterr()
    run_as_rq_job("scan-42", logging.getLogger("app.test").info, "inside the job")
    logging.getLogger("app.test").info("after the job")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    by_message = {entry["message"]: entry for entry in lines}
    assert by_message["inside the job"]["job_id"] == "scan-42"
    assert by_message["after the job"]["job_id"] is None


def test_secrets_logged_on_purpose_come_out_masked(app, json_logs, capsys):
    capsys.readouterr()
    log = logging.getLogger("app.test")
    secret_key = app.config["SECRET_KEY"]
    bridge = app.config["BRIDGE_SECRET"]
    log.warning("the key is %s", secret_key)
    log.warning("login with password=hunter2hunter and token: abcdef123456")
    log.warning("header Authorization: Bearer eyJhbGciOi.xyz")
    log.warning("connecting to redis://default:s3cretpw@10.0.0.5:6379/0", extra={"shared": bridge})
    try:
        raise RuntimeError(f"failed with {bridge}")
    except RuntimeError:
        log.exception("boom")
    out = capsys.readouterr().err
    for secret in (secret_key, bridge, "hunter2hunter", "abcdef123456", "eyJhbGciOi.xyz", "s3cretpw"):
        assert secret not in out, secret
    assert out.count("***") >= 6
    assert "redis://default:***@10.0.0.5:6379/0" in out


def test_text_log_lines_are_masked_too(app, capsys):
    capsys.readouterr()
    logging.getLogger("app.test").warning("bridge secret %s", app.config["BRIDGE_SECRET"])
    out = capsys.readouterr().err
    assert "bridge secret ***" in out
    assert app.config["BRIDGE_SECRET"] not in out


def test_redact_leaves_ordinary_text_alone():
    text = "scan-3 stored 12 messages, tickets_created=2, folder INBOX"
    assert redact(text) == text


def test_audit_record_logs_action_and_target_not_details(app, json_logs, capsys):
    capsys.readouterr()
    with app.test_request_context("/"):
        audit.record("mail_server.update", "Main server", "changed password to letmein-please")
        db.session.commit()
    out = capsys.readouterr().err
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    entry = next(e for e in lines if e.get("audit_action") == "mail_server.update")
    assert entry["audit_target"] == "Main server"
    assert "letmein-please" not in out


# ---------------------------------------------------------------- Audit page

def test_audit_page_newest_first_with_names_and_filter(app, client, admin, auth):
    other = factories.user(username="bob", admin=True)
    base = utcnow()
    db.session.add_all([
        AuditEntry(user_id=admin.id, action="mail_server.create", target="Main", at=base - timedelta(minutes=3)),
        AuditEntry(user_id=other.id, action="scanner.update", target="Sales box", at=base - timedelta(minutes=2)),
        AuditEntry(user_id=None, action="queue.retry", target="scan-9", at=base - timedelta(minutes=1)),
    ])
    db.session.commit()
    auth.login("admin")
    page = client.get("/admin/audit").get_data(as_text=True)
    assert page.index("scan-9") < page.index("Sales box") < page.index("Main<")
    assert "Bob" in page and "system" in page
    filtered = client.get("/admin/audit?action=scanner").get_data(as_text=True)
    assert "Sales box" in filtered
    assert "scan-9" not in filtered and "mail_server.create" not in filtered


def test_audit_page_query_count_does_not_grow_with_rows(app, client, admin, auth):
    from sqlalchemy import event

    auth.login("admin")
    users = [factories.user(username=f"user{i}", admin=True) for i in range(5)]

    def count_queries():
        seen = []

        def before(conn, cursor, statement, params, context, executemany):
            seen.append(statement)

        event.listen(db.engine, "before_cursor_execute", before)
        try:
            client.get("/admin/audit")
        finally:
            event.remove(db.engine, "before_cursor_execute", before)
        return len(seen)

    db.session.add(AuditEntry(user_id=users[0].id, action="a.b", target="t"))
    db.session.commit()
    few = count_queries()
    db.session.add_all([AuditEntry(user_id=u.id, action="a.b", target="t") for u in users for _ in range(3)])
    db.session.commit()
    assert count_queries() == few


def test_audit_pager_keeps_the_filter(app, client, admin, auth, monkeypatch):
    monkeypatch.setitem(app.config, "PER_PAGE", 2)
    db.session.add_all([AuditEntry(user_id=admin.id, action="scanner.update", target=f"box {i}") for i in range(5)]
                       + [AuditEntry(user_id=admin.id, action="mail_server.update", target="srv")])
    db.session.commit()
    auth.login("admin")
    page = client.get("/admin/audit?action=scanner").get_data(as_text=True)
    assert "Page 1 of 3" in page
    assert "action=scanner" in page[page.index('class="pager"'):]
    last = client.get("/admin/audit?action=scanner&page=3").get_data(as_text=True)
    assert "box 0" in last and "srv" not in last


def test_healthz_dead_database_is_503(tmp_path):
    from app import create_app

    broken = create_app("testing", SQLALCHEMY_DATABASE_URI="postgresql+psycopg://nobody@127.0.0.1:1/nothing",
                        INSTANCE_PATH=str(tmp_path))
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json() == {"database": "error", "redis": "skipped"}


def test_cli_health_and_check_alerts(app, runner, monkeypatch):
    result = runner.invoke(args=["ops", "health"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"database": "ok", "redis": "skipped"}
    monkeypatch.setitem(app.config, "QUEUE_MODE", "redis")
    monkeypatch.setitem(app.config, "REDIS_URL", DEAD_REDIS)
    result = runner.invoke(args=["ops", "health"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["redis"] == "error"

    monkeypatch.setitem(app.config, "ALERT_SMTP_HOST", None)
    account = _account("Stale box")
    account.created_at = utcnow() - timedelta(days=1)
    db.session.commit()
    result = runner.invoke(args=["ops", "check-alerts"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["opened"]) == 1 and "Stale box" in data["opened"][0]
    assert data["open"][0]["kind"] == "no_success"


def test_basic_config_console_handler_is_replaced_not_doubled(app, capsys):
    import sys

    root = logging.getLogger()
    plain = logging.StreamHandler(sys.stderr)
    root.addHandler(plain)
    try:
        configure_logging(app)
        assert plain not in root.handlers
        capsys.readouterr()
        logging.getLogger("app.test").warning("printed once")
        assert capsys.readouterr().err.count("printed once") == 1
    finally:
        if plain in root.handlers:
            root.removeHandler(plain)


def test_hand_offs_and_run_starts_are_logged_with_their_ids(app, json_logs, capsys):
    account = _account()
    capsys.readouterr()
    with app.test_request_context("/bridge/open", headers={"X-Request-ID": "req-handoff-1"}):
        app.preprocess_request()
        db.session.add(AutologinEvent(outcome="issued", account_id=account.id, address="10.0.0.9"))
        db.session.commit()
    run_as_rq_job("scan-5", _run, account, "running")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    handoff = next(e for e in lines if e["logger"] == "app.handoff")
    assert handoff["handoff_outcome"] == "issued" and handoff["account_id"] == account.id
    assert handoff["request_id"] == "req-handoff-1"
    run = next(e for e in lines if e["logger"] == "app.scan_run")
    assert run["job_id"] == "scan-5" and run["account_id"] == account.id


def test_metrics_parse_as_prometheus_text_with_their_types(app, client, monkeypatch):
    from prometheus_client import REGISTRY
    from prometheus_client.parser import text_string_to_metric_families

    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-token-123")
    _run(_account(), "done", seconds=3, downloaded=2)
    response = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"})
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    types = {f.name: f.type for f in text_string_to_metric_families(response.get_data(as_text=True))}
    assert types == {
        "cm_scan_runs": "gauge", "cm_messages_downloaded": "counter", "cm_emails_created": "counter",
        "cm_emails_bound": "counter", "cm_tickets_created": "counter", "cm_tickets_reopened": "counter",
        "cm_messages_ignored": "counter", "cm_message_errors": "counter", "cm_messages_held": "counter",
        "cm_scan_run_duration_seconds": "histogram", "cm_scanners": "gauge", "cm_scanners_blocked": "gauge",
        "cm_alerts_open": "gauge", "cm_scanner_last_success_timestamp_seconds": "gauge",
        "cm_handoffs": "counter", "cm_queue_inline": "gauge",
    }
    # Each scrape has a registry of its own: prometheus_client's global one stays free of ours.
    assert REGISTRY.get_sample_value("cm_scanners_blocked") is None
