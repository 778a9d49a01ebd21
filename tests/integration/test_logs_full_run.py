"""No secret in the logs of a full run: a failed and a successful scan against the real Dovecot,
plus the admin pages, /healthz and /metrics, all logged as JSON at DEBUG level and scanned."""

from __future__ import annotations

import json
import secrets
from email.message import EmailMessage

import pytest

from app.crypto import encrypt_secret
from app.extensions import db
from app.logging_setup import configure_logging
from app.models import MailServer
from app.scanning.run import run_scan
from app.services import scanners
from tests.rq_job import run_as_rq_job

pytestmark = pytest.mark.integration


@pytest.fixture
def debug_json_logs(app, monkeypatch):
    monkeypatch.setitem(app.config, "LOG_FORMAT", "json")
    monkeypatch.setitem(app.config, "LOG_LEVEL", "DEBUG")
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "metrics-" + secrets.token_hex(12))
    configure_logging(app)
    yield
    monkeypatch.undo()
    configure_logging(app)


def _message() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Jane Customer <jane@acme.test>"
    msg["To"] = "support@corp.test"
    msg["Subject"] = "Log scan test"
    msg["Message-ID"] = f"<{secrets.token_hex(8)}@acme.test>"
    msg.set_content("Hello.\n")
    return msg.as_bytes()


def test_no_secret_in_the_logs_of_a_full_run(app, client, admin, auth, dovecot, debug_json_logs, capfd):
    login, password = dovecot.new_user("logscan")
    dovecot.append(login, password, "INBOX", _message())
    wrong = "wrong-" + secrets.token_hex(8)
    capfd.readouterr()

    server = MailServer(name="Lab Dovecot", imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                        smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
    db.session.add(server)
    db.session.commit()
    account = scanners.create_scanner("Log box", server.id, login, wrong, folders=[("INBOX", "incoming")])
    job_id = f"scan-{account.id}"
    failed = run_as_rq_job(job_id, run_scan, account.id, trigger="cli", job_id=job_id)
    assert failed.status == "failed"

    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password)
    account.health, account.login_failures = "active", 0
    db.session.commit()
    done = run_as_rq_job(job_id, run_scan, account.id, trigger="cli", job_id=job_id)
    assert done.status in ("done", "partial") and done.downloaded == 1

    auth.login("admin")
    for url in ("/admin/scanners", "/admin/queues", "/admin/audit", "/healthz"):
        client.get(url)
    client.get("/metrics", headers={"Authorization": f"Bearer {app.config['METRICS_TOKEN']}"})

    out = capfd.readouterr()
    text = out.out + out.err
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    # The logs are really there, and what the scan logged carries its job id.
    assert any(e.get("request_id") and e["logger"] == "app.request" for e in entries)
    assert any(e.get("audit_action") == "mail_scanner.create" for e in entries)
    assert all(e.get("job_id") == job_id for e in entries if e["logger"].startswith("app.scanning"))
    assert len([e for e in entries if e["logger"] == "app.scan_run" and e.get("job_id") == job_id]) == 2
    for secret in (password, wrong, app.config["SECRET_KEY"], app.config["MAIL_ENCRYPTION_KEY"],
                   app.config["BRIDGE_SECRET"], app.config["METRICS_TOKEN"], "correct horse battery"):
        assert secret not in text, f"a secret reached the logs: {secret[:3]}…"
