"""The real hand-off stack for integration and browser tests: the Flask app served by
werkzeug in a thread (file SQLite database), and a private Roundcube (``php -S``, set up by
scripts/roundcube.sh in a temporary folder) whose plugin redeems tokens at that Flask app.
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import requests
from werkzeug.serving import make_server

from app import create_app
from app.cli.roundcube import write_plugin_config
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer, User
from app.services.autologin import grants as mailbox_grants
from app.services.autologin import handoff as mailbox_handoff
from tests.ci import unavailable

ROOT = Path(__file__).resolve().parent.parent
ROUNDCUBE_SH = ROOT / "scripts" / "roundcube.sh"
PASSWORD = "correct horse battery"


def csrf_of(page: str) -> str:
    """The CSRF token of the first form of a Flask page."""
    match = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page)
    assert match, "no CSRF token on the page"
    return match.group(1)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    """A running Flask app and Roundcube wired to each other."""

    app: object
    flask_url: str
    roundcube_url: str
    rc_dir: Path
    _stops: list = field(default_factory=list)

    def add_user(self, username: str, admin: bool = False) -> int:
        with self.app.app_context():
            user = User(username=username, is_admin=admin, full_name=username.title())
            user.set_password(PASSWORD)
            db.session.add(user)
            db.session.commit()
            return user.id

    def add_mailbox(self, name: str, login: str, password: str, *, imap_host: str, imap_port: int,
                    smtp_host: str = "127.0.0.1", smtp_port: int = 10025, smtp_auth: bool = True) -> int:
        with self.app.app_context():
            server = MailServer(name=f"{name} server", imap_host=imap_host, imap_port=imap_port,
                                imap_security="none", smtp_host=smtp_host, smtp_port=smtp_port,
                                smtp_security="none", smtp_auth=smtp_auth, validate_cert=True)
            account = MailAccount(name=name, server=server, login=login,
                                  password_enc=encrypt_secret(self.app.config["MAIL_ENCRYPTION_KEY"], password))
            db.session.add_all([server, account])
            db.session.commit()
            return account.id

    def grant(self, account_id: int, *user_ids: int) -> None:
        with self.app.app_context(), self.app.test_request_context():
            mailbox_grants.set_grants(account_id, list(user_ids))

    def mint(self, user_id: int, account_id: int) -> str:
        with self.app.app_context():
            return mailbox_handoff.open_mailbox(db.session.get(User, user_id), account_id, "127.0.0.1")

    def browser(self, username: str) -> requests.Session:
        """A browser (a requests session) logged in to the Flask app as ``username``."""
        session = requests.Session()
        page = session.get(f"{self.flask_url}/login", timeout=10)
        answer = session.post(f"{self.flask_url}/login", allow_redirects=False, timeout=30, data={
            "username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)})
        assert answer.status_code == 302, answer.text[:300]
        return session

    def click(self, session: requests.Session, account_id: int) -> tuple[str, str]:
        """The mailbox button: POST /bridge/open/<id>; returns (Roundcube URL, token) of the hand-off form."""
        page = session.get(f"{self.flask_url}/", timeout=10)
        answer = session.post(f"{self.flask_url}/bridge/open/{account_id}", data={"csrf_token": csrf_of(page.text)},
                              timeout=30)
        assert answer.status_code == 200, answer.text[:300]
        form = re.search(r'<form method="post" action="([^"]+)" data-autosubmit', answer.text)
        token = re.search(r'name="_autologin" value="([A-Za-z0-9_-]+)"', answer.text)
        assert form and token, answer.text[:500]
        return html.unescape(form.group(1)), token.group(1)

    def open_mailbox(self, session: requests.Session, account_id: int) -> requests.Response:
        """The whole hand-off as a browser does it: click, post to Roundcube, bind, back to Roundcube."""
        url, token = self.click(session, account_id)
        return session.post(url, data={"_autologin": token}, timeout=60)

    def stop(self) -> None:
        for stop in reversed(self._stops):
            stop()


def start_stack(tmp_path: Path, *, default_imap: str = "127.0.0.1:1", default_smtp: str = "127.0.0.1:1") -> Stack:
    """Start Flask and Roundcube; Roundcube's own defaults point at dead ports on purpose,
    so a working login proves the per-login hosts from Flask's answer were used."""
    if not Path("/usr/share/roundcube/index.php").exists():
        unavailable("Roundcube is not installed (scripts/install.sh installs roundcube-core)")
    flask_port, rc_port = free_port(), free_port()
    flask_url, rc_url = f"http://127.0.0.1:{flask_port}", f"http://127.0.0.1:{rc_port}/"
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'app.db'}",
                     INSTANCE_PATH=str(tmp_path / "instance"), ROUNDCUBE_URL=rc_url,
                     # The tests open mailboxes much faster than people do; the limit has its own test.
                     AUTOLOGIN_MINT_LIMIT=10_000)
    with app.app_context():
        db.create_all()
    server = make_server("127.0.0.1", flask_port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="flask-under-test", daemon=True)
    thread.start()
    stack = Stack(app=app, flask_url=flask_url, roundcube_url=rc_url, rc_dir=tmp_path / "roundcube")
    stack._stops.append(server.shutdown)

    env = dict(os.environ, RC_STATE_DIR=str(stack.rc_dir), RC_PORT=str(rc_port), RC_IMAP_HOST=default_imap,
               RC_SMTP_HOST=default_smtp, RC_SKIP_INSTALL="1")
    write_plugin_config(stack.rc_dir / "config", f"{flask_url}/bridge/redeem", app.config["BRIDGE_SECRET"])
    proc = subprocess.run(["bash", str(ROUNDCUBE_SH), "start"], env=env, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        stack.stop()
        raise RuntimeError(f"scripts/roundcube.sh start failed: {proc.stderr or proc.stdout}")
    stack._stops.append(lambda: subprocess.run(["bash", str(ROUNDCUBE_SH), "stop"], env=env,
                                               capture_output=True, timeout=30))
    return stack


def roundcube_logs(stack: Stack) -> str:
    """Everything Roundcube logged (for failure messages and secret checks)."""
    logs = stack.rc_dir / "logs"
    return "\n".join(p.read_text(errors="replace") for p in sorted(logs.glob("*")) if p.is_file())
