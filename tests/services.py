"""Real services for tests: the private Dovecot, Redis and the SMTP sink.

The services are started by ``scripts/services.sh`` (the same script the demo uses), so
tests and the demo share one way of running them. ``ensure_*`` starts what is missing and
returns a handle; the pytest fixtures at the bottom wrap them and skip, with the reason,
when a service cannot run on this machine (``scripts/test.sh`` installs everything, so with
``CI=true`` a missing service fails the test instead of skipping it).

Import the fixtures into a ``conftest.py`` with::

    from tests.services import dovecot, redis_url, smtp_sink  # noqa: F401
"""

from __future__ import annotations

import email
import email.policy
import fcntl
import imaplib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ci import unavailable

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".state"
SERVICES_SH = ROOT / "scripts" / "services.sh"

DOVECOT_HOST = "127.0.0.1"
DOVECOT_PORT = int(os.environ.get("CM_DOVECOT_PORT", "10143"))
SMTP_HOST = "127.0.0.1"
SMTP_PORT = int(os.environ.get("CM_SMTP_PORT", "10025"))
USERS_FILE = STATE / "dovecot" / "users"
MAIL_ROOT = STATE / "mail"
SMTP_MESSAGES = STATE / "smtp" / "messages"
REDIS_URL_FILE = STATE / "redis.url"

DEMO_USERS = {"demo@corp.test": "demopw", "sales@corp.test": "salespw", "support@corp.test": "supportpw"}


class ServiceUnavailable(RuntimeError):
    """A service cannot run here; the message says what is missing."""


def _services(action: str, name: str) -> None:
    """Run ``scripts/services.sh ACTION NAME``, raising ServiceUnavailable with its output on failure."""
    proc = subprocess.run(["bash", str(SERVICES_SH), action, name], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    if proc.returncode != 0:
        raise ServiceUnavailable(f"scripts/services.sh {action} {name} failed: "
                                 f"{(proc.stderr or proc.stdout).strip()}")


def _greets(host: str, port: int, prefix: bytes, timeout: float = 2.0) -> bool:
    """True when a server on host:port sends a greeting starting with ``prefix``."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            return sock.recv(256).startswith(prefix)
    except OSError:
        return False


# --------------------------------------------------------------------------- Dovecot


@dataclass
class Dovecot:
    """The private Dovecot: add users, append mail, find their Maildir."""

    host: str = DOVECOT_HOST
    port: int = DOVECOT_PORT
    users_file: Path = USERS_FILE

    def add_user(self, login: str, password: str, *, wait: bool = True) -> None:
        """Create the user, or change their password, and wait until Dovecot accepts the login.

        The line goes to the shared users file and to ``users.d/<login>``, which Dovecot
        consults first: it re-checks a passwd-file at most once a second, and a file it has
        never read is read fresh, so a new user can log in at once. A changed password may
        take up to a second; with ``wait`` (the default) this returns once the login works.
        """
        if not login or any(c in login for c in ":/\n\r\0") or login.startswith(".") \
                or any(c in password for c in ":\n\r\0"):
            raise ValueError("login may not contain ':', '/' or newlines; password may not contain ':' or newlines")
        line = f"{login}:{{PLAIN}}{password}::::::"
        self.users_file.parent.mkdir(parents=True, exist_ok=True)
        lock_path = self.users_file.with_name(self.users_file.name + ".lock")
        with open(lock_path, "w") as lock:
            # Tests may run in parallel processes: serialize edits of the shared file.
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                old = self.users_file.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                old = []
            previous = [entry for entry in old if entry.split(":", 1)[0] == login]
            lines = [entry for entry in old if entry and entry.split(":", 1)[0] != login]
            _replace_file(self.users_file, "\n".join([*lines, line]) + "\n")
            per_user = self.users_file.with_name("users.d") / login
            per_user.parent.mkdir(exist_ok=True)
            _replace_file(per_user, line + "\n")
        if wait:
            old_password = previous[-1].split(":")[1].removeprefix("{PLAIN}") if previous else None
            self._wait_for_login(login, password, old_password if old_password != password else None)

    def _wait_for_login(self, login: str, password: str, old_password: str | None, timeout: float = 5.0) -> None:
        """Wait until ``password`` logs in and ``old_password`` (if any) no longer does."""
        deadline = time.monotonic() + timeout
        while True:
            if self._login_works(login, password) and not (old_password and self._login_works(login, old_password)):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Dovecot did not pick up the new password of {login} within {timeout} s")
            time.sleep(0.1)

    def _login_works(self, login: str, password: str) -> bool:
        try:
            self.connect(login, password).logout()
        except imaplib.IMAP4.error:
            return False
        return True

    def new_user(self, prefix: str = "user", domain: str = "corp.test") -> tuple[str, str]:
        """Create a user with a unique login and a random password; returns (login, password)."""
        login = f"{prefix}-{secrets.token_hex(4)}@{domain}"
        password = secrets.token_urlsafe(12)
        self.add_user(login, password)
        return login, password

    def connect(self, login: str, password: str) -> imaplib.IMAP4:
        """An imaplib connection, logged in."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=30)
        try:
            conn.login(login, password)
        except Exception:
            conn.shutdown()
            raise
        return conn

    def append(self, login: str, password: str, folder: str, raw: bytes, *, flags: str = "",
               date_time=None) -> int | None:
        """Append one message to ``folder`` (created when missing); returns its UID."""
        return self.append_many(login, password, folder, [raw], flags=flags, date_time=date_time)[0]

    def append_many(self, login: str, password: str, folder: str, messages, *, flags: str = "",
                    date_time=None) -> list[int | None]:
        """Append several messages over one connection; returns their UIDs in order."""
        conn = self.connect(login, password)
        try:
            _ensure_folder(conn, folder)
            uids = []
            stamp = imaplib.Time2Internaldate(date_time if date_time is not None else time.time())
            for raw in messages:
                typ, data = conn.append(_quote(folder), f"({flags})" if flags else None, stamp, raw)
                if typ != "OK":
                    raise RuntimeError(f"APPEND to {folder} failed: {data!r}")
                match = re.search(rb"APPENDUID \d+ (\d+)", data[0] or b"")
                uids.append(int(match.group(1)) if match else None)
            return uids
        finally:
            conn.logout()

    def folders(self, login: str, password: str) -> list[str]:
        """Names of the user's folders as the server lists them."""
        conn = self.connect(login, password)
        try:
            typ, data = conn.list()
            names = []
            for line in data or []:
                match = re.search(rb'\) "[^"]*" (.+)$', line or b"")
                if match:
                    names.append(match.group(1).decode().strip('"'))
            return names
        finally:
            conn.logout()

    def maildir(self, login: str) -> Path:
        """The user's Maildir (home is .state/mail/<domain>/<local part>, see services.sh)."""
        local, _, domain = login.partition("@")
        return MAIL_ROOT / domain / local / "Maildir"

    def reset_mailbox(self, login: str) -> None:
        """Delete every folder and message of the user (the next login starts empty)."""
        shutil.rmtree(self.maildir(login).parent, ignore_errors=True)


def nobody_group() -> str:
    """The group of the unprivileged user the test Dovecots run mail as ("nogroup" on Debian)."""
    import grp

    for name in ("nogroup", "nobody"):
        try:
            grp.getgrnam(name)
            return name
        except KeyError:
            continue
    return "nogroup"


def _replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, making sure Dovecot sees it as changed."""
    try:
        before = path.stat()
    except FileNotFoundError:
        before = None
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o644)
    # Renamed into place so Dovecot never reads a half-written file.
    os.replace(tmp, path)
    # Dovecot notices a change by mtime (whole seconds) and size: move the mtime on
    # when a same-size rewrite could otherwise go unnoticed.
    if before is not None and path.stat().st_size == before.st_size:
        stamp = max(time.time(), before.st_mtime + 1)
        os.utime(path, (stamp, stamp))


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ensure_folder(conn: imaplib.IMAP4, folder: str) -> None:
    if folder.upper() == "INBOX":
        return
    typ, _ = conn.select(_quote(folder), readonly=True)
    if typ == "OK":
        return
    typ, data = conn.create(_quote(folder))
    if typ != "OK":
        raise RuntimeError(f"cannot create folder {folder}: {data!r}")
    conn.subscribe(_quote(folder))


def ensure_dovecot() -> Dovecot:
    """The private Dovecot on 127.0.0.1:10143, started by scripts/services.sh when not running."""
    if not _greets(DOVECOT_HOST, DOVECOT_PORT, b"* OK"):
        if shutil.which("dovecot") is None and not Path("/usr/sbin/dovecot").exists():
            raise ServiceUnavailable("Dovecot is not installed (apt-get install dovecot-imapd, "
                                     "or run scripts/install.sh)")
        _services("start", "dovecot")
        if not _greets(DOVECOT_HOST, DOVECOT_PORT, b"* OK"):
            raise ServiceUnavailable(f"Dovecot did not greet on {DOVECOT_HOST}:{DOVECOT_PORT}; "
                                     f"see {STATE / 'dovecot' / 'dovecot.log'}")
    return Dovecot()


# --------------------------------------------------------------------------- Redis


def _redis_answers(url: str) -> bool:
    try:
        import redis

        conn = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(conn.ping())
        finally:
            conn.close()
    except Exception:  # any failure means "not usable": the caller starts one or skips
        return False


def ensure_redis() -> str:
    """A Redis URL that answers PING: the shared 6379 one, or the private one services.sh starts."""
    if REDIS_URL_FILE.exists():
        url = REDIS_URL_FILE.read_text().strip()
        if url and _redis_answers(url):
            return url
    _services("start", "redis")
    url = REDIS_URL_FILE.read_text().strip() if REDIS_URL_FILE.exists() else ""
    if not url or not _redis_answers(url):
        raise ServiceUnavailable("Redis is neither answering on 127.0.0.1:6379 nor startable "
                                 "(apt-get install redis-server, or run scripts/install.sh)")
    return url


# --------------------------------------------------------------------------- SMTP sink


@dataclass
class SinkMessage:
    """One message the SMTP sink accepted."""

    path: Path
    raw: bytes
    auth_user: str | None
    mail_from: str
    rcpt_tos: list[str]

    @property
    def message(self) -> email.message.EmailMessage:
        return email.message_from_bytes(self.raw, policy=email.policy.default)


@dataclass
class SmtpSink:
    """The demo SMTP sink on 127.0.0.1:10025; AUTH checks the Dovecot users file."""

    host: str = SMTP_HOST
    port: int = SMTP_PORT
    folder: Path = SMTP_MESSAGES

    def messages(self, since: float = 0.0) -> list[SinkMessage]:
        """Messages accepted (oldest first), optionally only those received after ``since``."""
        found = []
        for eml in sorted(self.folder.glob("*.eml")):
            meta = json.loads(eml.with_suffix(".json").read_text())
            if meta.get("received_at", 0) < since:
                continue
            found.append(SinkMessage(path=eml, raw=eml.read_bytes(), auth_user=meta.get("auth_user"),
                                     mail_from=meta.get("mail_from", ""), rcpt_tos=meta.get("rcpt_tos", [])))
        return found

    def wait_for(self, predicate, timeout: float = 15.0, since: float = 0.0) -> SinkMessage:
        """The first message matching ``predicate``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.messages(since):
                if predicate(msg):
                    return msg
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching message reached the SMTP sink within {timeout} s")
            time.sleep(0.1)


def ensure_smtp() -> SmtpSink:
    """The SMTP sink, started by scripts/services.sh when not running."""
    if not _greets(SMTP_HOST, SMTP_PORT, b"220"):
        _services("start", "smtp")
        if not _greets(SMTP_HOST, SMTP_PORT, b"220"):
            raise ServiceUnavailable(f"the SMTP sink did not greet on {SMTP_HOST}:{SMTP_PORT}; "
                                     f"see {STATE / 'smtp' / 'smtp.log'}")
    return SmtpSink()


# --------------------------------------------------------------------------- fixtures


def _unavailable(exc: ServiceUnavailable):
    """Skip with the reason; in CI (where scripts/test.sh installs everything) fail instead."""
    unavailable(str(exc))


@pytest.fixture(scope="session")
def dovecot() -> Dovecot:
    """The private Dovecot (skips with the reason when it cannot run here)."""
    try:
        return ensure_dovecot()
    except ServiceUnavailable as exc:
        _unavailable(exc)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL that answers (skips with the reason when none can run here)."""
    try:
        return ensure_redis()
    except ServiceUnavailable as exc:
        _unavailable(exc)


@pytest.fixture(scope="session")
def smtp_sink() -> SmtpSink:
    """The SMTP sink that keeps every message it receives (skips when it cannot run)."""
    try:
        return ensure_smtp()
    except ServiceUnavailable as exc:
        _unavailable(exc)
