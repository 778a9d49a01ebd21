"""A private Dovecot that checks XOAUTH2 logins against the test OAuth provider.

Separate from the shared Dovecot of scripts/services.sh (which it never touches):
its own config, base_dir, state, users and mail under ``.state/dovecot-oauth/s<pid>``,
on port 11143 when free (else a free port). Configured as measured on these machines:
an ``oauth2`` passdb for the XOAUTH2 / OAUTHBEARER mechanisms,
whose introspection URL is the provider's, plus a passwd-file passdb for
plain passwords; no failure delay and no anvil auth penalty (tests fail logins
on purpose). Start the provider first: its port goes into the config.

    provider = OAuthProvider().start()
    dovecot = start_oauth_dovecot(provider)
    dovecot.add_user("box@corp.test", "pw")   # a password for APPEND; XOAUTH2 via the provider
    ...
    dovecot.stop()                              # by the master's pid
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from app.scanning.liveness import pid_alive
from tests.oauth_provider import OAuthProvider, free_port
from tests.services import nobody_group

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".state" / "dovecot-oauth"
PREFERRED_PORT = 11143


class OAuthDovecotUnavailable(RuntimeError):
    """Dovecot cannot run here; the message says why."""


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _greets(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(64).startswith(b"* OK")
    except OSError:
        return False


@dataclass
class OAuthDovecot:
    """The running OAuth Dovecot: its port, users, mail, and how to stop it."""

    port: int
    base: Path
    conf: Path
    host: str = "127.0.0.1"

    @property
    def users_dir(self) -> Path:
        return self.base / "users.d"

    def add_user(self, login: str, password: str) -> None:
        """A mailbox that logs in with ``password`` (PLAIN/LOGIN) or an access token (XOAUTH2).

        One file per user, which Dovecot reads fresh on the first lookup (no
        passwd-file re-read delay), as scripts/services.sh does.
        """
        if not re.fullmatch(r"[A-Za-z0-9._+-]+@[A-Za-z0-9.-]+", login) or ":" in password or "\n" in password:
            raise ValueError("a plain login (local@domain) and a password without ':' or newlines")
        path = self.users_dir / login
        tmp = path.with_name(f".{login}.tmp")
        tmp.write_text(f"{login}:{{PLAIN}}{password}::::::\n", encoding="utf-8")
        tmp.chmod(0o644)
        os.replace(tmp, path)

    def connect(self, login: str, password: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4(self.host, self.port, timeout=30)
        conn.login(login, password)
        return conn

    def xoauth2(self, login: str, token: str) -> imaplib.IMAP4:
        """Log in with XOAUTH2 (raises imaplib.IMAP4.error when refused)."""
        conn = imaplib.IMAP4(self.host, self.port, timeout=30)
        blob = f"user={login}\1auth=Bearer {token}\1\1".encode()
        try:
            # imaplib sends no initial response; Dovecot answers "+" and gets the blob, or
            # after a refusal an empty line (LAB pitfall 11).
            sent = []

            def answer(_challenge):
                if sent:
                    return b""
                sent.append(1)
                return blob

            conn.authenticate("XOAUTH2", answer)
        except Exception:
            conn.shutdown()
            raise
        return conn

    def append(self, login: str, password: str, folder: str, raw: bytes) -> None:
        conn = self.connect(login, password)
        try:
            if folder.upper() != "INBOX":
                conn.create(f'"{folder}"')
            typ, data = conn.append(f'"{folder}"', None, imaplib.Time2Internaldate(time.time()), raw)
            if typ != "OK":
                raise RuntimeError(f"APPEND failed: {data!r}")
        finally:
            conn.logout()

    def log(self) -> str:
        try:
            return (self.base / "dovecot.log").read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def pid(self) -> int | None:
        try:
            return int((self.base / "run" / "master.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def stop(self, *, remove: bool = True) -> None:
        """Stop the master by its pid, wait for it to exit, and remove this instance's folder."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pid = None
        deadline = time.monotonic() + 15
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        if remove:
            shutil.rmtree(self.base, ignore_errors=True)


def _stop_orphans(root: Path) -> None:
    """Stop instances whose test session died without stopping them (their provider is gone too)."""
    for owner in root.glob("s*/owner"):
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if not pid_alive(pid):
            OAuthDovecot(0, owner.parent, owner.parent / "dovecot.conf").stop()


def _config(base: Path, port: int, provider: OAuthProvider) -> str:
    root = os.geteuid() == 0
    if root:
        user_fields = "uid=nobody gid=" + nobody_group() + " "
        extra = ""
        chroot = ""
    else:
        # Without root Dovecot cannot switch users: everything runs as ourselves.
        import grp
        import pwd

        me, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        user_fields = ""
        extra = (f"default_internal_user = {me}\ndefault_login_user = {me}\n"
                 f"default_internal_group = {group}\n")
        chroot = "  chroot ="
    return f"""# Written by tests/oauth_stack.py on every start.
instance_name = cm-dovecot-oauth-{os.getpid()}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
auth_verbose = yes
# Tests fail logins on purpose: no delay, no anvil penalty (LAB OAuth addendum, pitfall 1).
auth_failure_delay = 0
mail_fsync = never
{extra}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
{chroot}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}
}}
protocol imap {{
  mail_max_userip_connections = 200
}}
# No auth cache: a revoked token must stop working at once (pitfall 2).
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {base}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u {base}/users.d/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {base}/users.d/%u
  default_fields = {user_fields}home={base}/mail/%d/%n
}}
mail_location = maildir:~/Maildir
"""


def start_oauth_dovecot(provider: OAuthProvider, *, root: Path = STATE) -> OAuthDovecot:
    """Write the config (introspection at ``provider``) and start a private OAuth Dovecot.

    Each test session gets its own folder ``<root>/s<pid>`` (two suites running at once never
    share one), removed again by ``stop()``.
    """
    binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
    if binary is None:
        raise OAuthDovecotUnavailable("Dovecot is not installed (apt-get install dovecot-imapd, or run "
                                      "scripts/install.sh)")
    root.mkdir(parents=True, exist_ok=True)
    _stop_orphans(root)
    base = root / f"s{os.getpid()}"
    OAuthDovecot(0, base, base / "dovecot.conf").stop()  # this process's earlier instance, if any
    port = PREFERRED_PORT if _port_free(PREFERRED_PORT) else free_port()
    for sub in ("run", "state", "users.d", "mail"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "owner").write_text(str(os.getpid()))
    for path in (root.parent, root, base, base / "users.d"):
        path.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(base / "mail", "nobody", nobody_group())
    (base / "oauth2.conf.ext").write_text(
        f"introspection_mode = post\nintrospection_url = {provider.introspect_url}\n"
        "username_attribute = username\nactive_attribute = active\nactive_value = true\n", encoding="utf-8")
    conf = base / "dovecot.conf"
    conf.write_text(_config(base, port, provider), encoding="utf-8")
    (base / "run" / "master.pid").unlink(missing_ok=True)
    # The master forks and keeps inherited pipes open: its output goes to a file, not a pipe.
    with open(base / "start.out", "w+") as out:
        proc = subprocess.run([binary, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                              timeout=30)
        out.seek(0)
        said = out.read().strip()
    if proc.returncode != 0:
        raise OAuthDovecotUnavailable(f"dovecot failed to start: {said}")
    dovecot = OAuthDovecot(port, base, conf)
    deadline = time.monotonic() + 15
    while not _greets(port):
        if time.monotonic() > deadline:
            said = dovecot.log()[-800:]
            dovecot.stop()
            raise OAuthDovecotUnavailable(f"the OAuth Dovecot did not greet on port {port}: {said}")
        time.sleep(0.1)
    return dovecot


def oauth_dovecot_or_fail(provider: OAuthProvider) -> OAuthDovecot:
    """``start_oauth_dovecot`` for a fixture: when Dovecot cannot run, skip, or fail under CI=true."""
    from tests.ci import unavailable

    try:
        return start_oauth_dovecot(provider)
    except OAuthDovecotUnavailable as exc:
        unavailable(str(exc))
