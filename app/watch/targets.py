"""What the watcher watches: the enabled scanners read from the database, and what changed since.

``load_targets`` is one query over the scanners, their servers and folders (synchronous: the
watcher calls it in a thread with an app context, every few seconds). Each target carries a
fingerprint of everything that needs a new connection when it changes (server, login, secret,
folders, the connection cap); the folders' progress (UIDVALIDITY and last UID stored) travels
beside it, because it changes with every scan and must not restart a watch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import MailAccount, MailServer, MailSettings

# Scanner health that keeps it from being watched: the scans themselves decide when it is well again.
UNWATCHED_HEALTH = ("blocked", "reconnect")


@dataclass(frozen=True)
class WatchTarget:
    """One scanner as the watcher sees it; equal fingerprints mean "keep the connection"."""

    account_id: int
    name: str
    server_id: int
    host: str
    port: int
    security: str
    validate_cert: bool
    oauth: bool
    login: str
    secret_version: str  # the stored secret's ciphertext: a new password or token means a new login
    folders: tuple[str, ...]
    max_connections: int
    progress: dict[str, tuple[int | None, int]] = field(default_factory=dict, compare=False, hash=False)

    @property
    def fingerprint(self) -> tuple:
        """Everything that needs a new connection when it changes."""
        return (self.server_id, self.host, self.port, self.security, self.validate_cert, self.oauth,
                self.login, self.secret_version, self.folders, self.max_connections)

    @property
    def watch_connections(self) -> int:
        """Connections the watcher may open to this mailbox: the cap less one kept for its scan."""
        return max(1, (self.max_connections or 10) - 1)


@dataclass(frozen=True)
class Targets:
    """Every scanner to watch, by id, and how often a folder without IDLE is polled."""

    by_id: dict[int, WatchTarget]
    poll_seconds: float


def _target(account: MailAccount, server: MailServer) -> WatchTarget:
    oauth = (server.auth_method or "password") == "oauth2"
    secret = (account.oauth_refresh_token_enc if oauth else account.password_enc) or ""
    return WatchTarget(
        account_id=account.id, name=account.name, server_id=server.id, host=server.imap_host,
        port=int(server.imap_port), security=server.imap_security, validate_cert=server.validate_cert is not False,
        oauth=oauth, login=account.login, secret_version=secret[-24:],
        folders=tuple(f.name for f in account.folders), max_connections=server.max_connections or 10,
        progress={f.name: (f.uidvalidity, f.last_uid or 0) for f in account.folders})


def load_targets(app: Flask, poll_override: float | None = None) -> Targets:
    """The enabled, healthy scanners with at least one folder (OAuth ones only once connected)."""
    with app.app_context():
        try:
            every = timedelta(minutes=MailSettings.get().check_frequency_minutes or 5)
            accounts = db.session.scalars(
                select(MailAccount).join(MailServer)
                .where(MailAccount.enabled.is_(True), MailAccount.health.not_in(UNWATCHED_HEALTH))
                .options(selectinload(MailAccount.folders), selectinload(MailAccount.server))
                .order_by(MailAccount.id)).all()
            found = {}
            for account in accounts:
                target = _target(account, account.server)
                if target.folders and (target.secret_version or not target.oauth):
                    found[target.account_id] = target
            db.session.commit()
        finally:
            db.session.remove()
    return Targets(found, poll_override or every.total_seconds())


def watch_secret(app: Flask, account_id: int) -> str | None:
    """The login secret of a scanner (password, or a fresh OAuth access token), from a thread.

    ``app.connect.credentials.login_secret`` is synchronous and may refresh and commit a token,
    so the watcher calls this through ``asyncio.to_thread``.
    """
    from app.connect.credentials import login_secret

    with app.app_context():
        try:
            account = db.session.get(MailAccount, account_id)
            if account is None:
                return None
            return login_secret(account)
        finally:
            db.session.remove()
